package mesh

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netkey"
)

func ring(t *testing.T, keys ...string) netkey.Ring {
	t.Helper()
	r, err := netkey.ReadRing(strings.NewReader(strings.Join(keys, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := netkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withNetwork(r netkey.Ring) func(*Config) { return func(c *Config) { c.Network = r } }

// Nodes with the office key find each other; a node with another key, or
// none, cannot join them, cannot open a stream to them (nor they to it),
// and cannot be listed by them.
func TestClosedNetworkKeepsOthersOut(t *testing.T) {
	office := newKey(t)
	a := startNodeWith(t, t.TempDir(), "alice", withNetwork(ring(t, office)))
	b := startNodeWith(t, t.TempDir(), "bob", withNetwork(ring(t, office)), a.gossipAddr())
	waitFor(t, "alice and bob see each other verified", 5*time.Second, func() bool {
		p, ok := a.peer(b.m.ID())
		q, ok2 := b.peer(a.m.ID())
		return ok && ok2 && p.Verified && q.Verified
	})
	outsider := startNodeWith(t, t.TempDir(), "mallory", withNetwork(ring(t, newKey(t))), a.gossipAddr())
	open := startNodeWith(t, t.TempDir(), "guest", nil, a.gossipAddr())
	time.Sleep(2 * time.Second) // several gossip and push/pull rounds
	for _, n := range []*testNode{outsider, open} {
		if _, ok := a.peer(n.m.ID()); ok {
			t.Errorf("alice lists %s, which does not hold the key", n.m.cfg.Name)
		}
		if _, ok := n.peer(a.m.ID()); ok {
			t.Errorf("%s lists alice", n.m.cfg.Name)
		}
	}
	_, tp := a.m.Ports()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp)).String()
	// The outsider's wrong proof gets it nothing but a refusal.
	if _, err := outsider.m.Dialer().DialAddr(context.Background(), addr, a.m.ID(), ALPNPing); !errors.Is(err, ErrNetworkKey) {
		t.Errorf("the outsider's dial to alice: %v, want ErrNetworkKey", err)
	}
	// An open node's handshake completes (it proves nothing), but alice
	// says nothing on that stream and closes it.
	if s, err := open.m.Dialer().DialAddr(context.Background(), addr, a.m.ID(), ALPNPing); err == nil {
		s.SetReadDeadline(time.Now().Add(2 * handshakeTimeout))
		var b [1]byte
		n, rerr := s.Read(b[:])
		s.Close()
		if n != 0 || rerr == nil || errors.Is(rerr, os.ErrDeadlineExceeded) {
			t.Errorf("alice's stream to an open node: read %d bytes, %v; want it closed at once with nothing sent", n, rerr)
		}
	}
	// And alice cannot be drawn into a stream with them.
	for _, n := range []*testNode{outsider, open} {
		_, otp := n.m.Ports()
		oaddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(otp)).String()
		if _, err := a.m.Dialer().DialAddr(context.Background(), oaddr, n.m.ID(), ALPNPing); !errors.Is(err, ErrNetworkKey) {
			t.Errorf("alice's dial to %s: %v, want ErrNetworkKey", n.m.cfg.Name, err)
		}
	}
}

// A change-over, in three steps, each begun once every node has done the
// one before: add the new key beside the old (speaking the old), speak the
// new (accepting the old), drop the old. Nodes one step apart reach each
// other; a node still on the old key alone is out once others hold only
// the new.
func TestKeyChangeOver(t *testing.T) {
	old, next := newKey(t), newKey(t)
	a := startNodeWith(t, t.TempDir(), "alice", withNetwork(ring(t, old, next)))               // step 1
	b := startNodeWith(t, t.TempDir(), "bob", withNetwork(ring(t, next, old)), a.gossipAddr()) // step 2
	c := startNodeWith(t, t.TempDir(), "carol", withNetwork(ring(t, next, old)), b.gossipAddr())
	verifiedBy := func(ns ...*testNode) bool {
		for _, x := range ns {
			for _, y := range ns {
				if x == y {
					continue
				}
				if p, ok := x.peer(y.m.ID()); !ok || !p.Verified || !p.Online() {
					return false
				}
			}
		}
		return true
	}
	waitFor(t, "steps 1 and 2 reach each other", 8*time.Second, func() bool { return verifiedBy(a, b, c) })
	a.stop()                                                                               // alice moves on: the rest are at step 2 or 3
	d := startNodeWith(t, t.TempDir(), "dave", withNetwork(ring(t, next)), c.gossipAddr()) // step 3
	waitFor(t, "steps 2 and 3 reach each other", 8*time.Second, func() bool { return verifiedBy(b, c, d) })
	stale := startNodeWith(t, t.TempDir(), "erin", withNetwork(ring(t, old)), d.gossipAddr())
	time.Sleep(2 * time.Second)
	if _, ok := stale.peer(d.m.ID()); ok {
		t.Error("a node with only the old key joined dave, who holds only the new")
	}
}

func TestProveNetworkOpenIsANoOp(t *testing.T) {
	if err := proveNetwork(nil, nil, true); err != nil {
		t.Fatal(err)
	}
}
