package mesh

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/testutil"
)

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, timeout, cond)
}

func testLogger(t *testing.T) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

type testNode struct {
	m      *Mesh
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []Event
}

func (n *testNode) gossipAddr() string {
	g, _ := n.m.Ports()
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(g)).String()
}

func (n *testNode) peer(id string) (Peer, bool) { return n.m.Peer(id) }

func (n *testNode) stop() { n.cancel(); <-n.done }

func startNode(t *testing.T, dir, name string, join ...string) *testNode {
	t.Helper()
	id, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Identity = id
	cfg.Name = name
	cfg.AdvertiseAddr = netip.MustParseAddr("127.0.0.1")
	cfg.GossipPort, cfg.TLSPort = 0, 0
	cfg.Join = join
	cfg.RejoinInterval = 300 * time.Millisecond
	cfg.Logger = testLogger(t)
	cfg.Tune = func(c *memberlist.Config) {
		c.ProbeInterval = 100 * time.Millisecond
		c.ProbeTimeout = 50 * time.Millisecond
		c.SuspicionMult = 2
		c.PushPullInterval = time.Second
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{m: m, cancel: cancel, done: make(chan struct{})}
	m.Subscribe(func(e Event) {
		n.mu.Lock()
		n.events = append(n.events, e)
		n.mu.Unlock()
	})
	go func() {
		defer close(n.done)
		if err := m.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { n.stop() })
	return n
}

func TestJoinPresenceLeave(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	b := startNode(t, t.TempDir(), "bob", a.gossipAddr())
	c := startNode(t, t.TempDir(), "carol", a.gossipAddr())
	all := []*testNode{a, b, c}
	for _, x := range all {
		for _, y := range all {
			if x == y {
				continue
			}
			waitFor(t, x.m.Self().Name+" sees "+y.m.Self().Name+" verified", 5*time.Second, func() bool {
				p, ok := x.peer(y.m.ID())
				return ok && p.State == Available && p.Verified
			})
		}
	}
	if err := b.m.SetPresence(Away, "at lunch"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "away seen", 5*time.Second, func() bool {
		p, _ := a.peer(b.m.ID())
		return p.State == Away && p.Status == "at lunch"
	})
	b.stop()
	waitFor(t, "b left", 5*time.Second, func() bool {
		p, _ := a.peer(b.m.ID())
		q, _ := c.peer(b.m.ID())
		return p.State == Left && q.State == Left
	})
}

func TestCrashIsLostAndRestartReturnsAsOneEntry(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	dir := t.TempDir()
	b := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "b seen", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Online() })
	// Close without Leave looks like a crash to the others.
	b.m.Close()
	waitFor(t, "b lost", 10*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Offline })
	b2 := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "b back", 5*time.Second, func() bool { p, _ := a.peer(b2.m.ID()); return p.State == Available })
	if n := len(a.m.Peers()); n != 1 {
		t.Fatalf("a lists %d peers after bob restarted, want 1", n)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var changes []Change
	for _, e := range a.events {
		changes = append(changes, e.Change)
	}
	want := []Change{Joined, Lost, Returned}
	if len(changes) < 3 || changes[0] != want[0] || changes[1] != want[1] || changes[2] != want[2] {
		t.Fatalf("events %v, want %v", changes, want)
	}
}

func TestRestartWhileStillAliveOnAnotherPort(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	dir := t.TempDir()
	b := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "b seen", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Online() })
	old, _ := a.peer(b.m.ID())
	b.m.Close() // crash, then at once a new run on new ports
	b2 := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "new run adopted", 2*time.Second, func() bool {
		p, _ := a.peer(b2.m.ID())
		return p.Online() && p.GossipPort != old.GossipPort
	})
	// the old run's death must not mark the peer offline
	time.Sleep(1500 * time.Millisecond)
	if p, _ := a.peer(b2.m.ID()); !p.Online() {
		t.Fatalf("peer shown %v after its old run died", p.State)
	}
}

func TestGarbageOnPortsIsRefused(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	b := startNode(t, t.TempDir(), "bob", a.gossipAddr())
	waitFor(t, "b seen", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Verified })
	g, tp := a.m.Ports()
	for _, port := range []int{g, tp} {
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
		for _, payload := range [][]byte{
			[]byte("\x16\x03\x01\xff\xff garbage"),
			{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			[]byte("GET / HTTP/1.0\r\n\r\n"),
		} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(payload)
			c.SetReadDeadline(time.Now().Add(6 * time.Second))
			io.Copy(io.Discard, c)
			c.Close()
		}
		// half-open: connect and say nothing; must not block others
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		u, err := net.Dial("udp", addr)
		if err == nil {
			u.Write([]byte{0xde, 0xad, 0xbe, 0xef})
			u.Close()
		}
	}
	s, err := b.m.Dial(context.Background(), a.m.ID(), ALPNPing)
	if err != nil {
		t.Fatalf("dial after garbage: %v", err)
	}
	s.Close()
	if p, _ := b.peer(a.m.ID()); !p.Online() {
		t.Fatal("a went offline after garbage")
	}
}

func TestDialChecksIdentity(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	other, _ := LoadOrCreateIdentity(t.TempDir())
	d, _ := NewDialer(other)
	_, tp := a.m.Ports()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp)).String()
	if _, err := d.DialAddr(context.Background(), addr, other.ID, ALPNPing); err == nil {
		t.Fatal("dial expecting another id succeeded")
	}
	list, err := d.FetchDirectory(context.Background(), addr, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != a.m.ID() || list[0].Name != "alice" || !list[0].Verified {
		t.Fatalf("directory %+v", list)
	}
}
