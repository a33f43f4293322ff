package mesh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
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

// changes lists the events n has published about peer id, in order.
func (n *testNode) changes(id string) []Change {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Change
	for _, e := range n.events {
		if e.Peer.ID == id {
			out = append(out, e.Change)
		}
	}
	return out
}

// saw reports whether n has published an event about peer id that ok accepts.
func (n *testNode) saw(id string, ok func(Event) bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.events {
		if e.Peer.ID == id && ok(e) {
			return true
		}
	}
	return false
}

func count(cs []Change, c Change) int {
	n := 0
	for _, x := range cs {
		if x == c {
			n++
		}
	}
	return n
}

func (n *testNode) stop() { n.cancel(); <-n.done }

func startNode(t *testing.T, dir, name string, join ...string) *testNode {
	t.Helper()
	return startNodeWith(t, dir, name, nil, join...)
}

// startNodeWith is startNode with tune applied to the configuration last.
func startNodeWith(t *testing.T, dir, name string, tune func(*Config), join ...string) *testNode {
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
	cfg.ReconnectInterval = 100 * time.Millisecond
	cfg.Logger = testLogger(t)
	cfg.Tune = func(c *memberlist.Config) {
		c.ProbeInterval = 100 * time.Millisecond
		c.ProbeTimeout = 50 * time.Millisecond
		c.SuspicionMult = 2
		c.PushPullInterval = time.Second
	}
	if tune != nil {
		tune(&cfg)
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
	waitFor(t, "b verified", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Online() && p.Verified })
	// Close without Leave looks like a crash to the others.
	b.m.Close()
	// Generous: under a loaded -race run memberlist's awareness stretches
	// its probe interval up to eightfold, and this asserts the outcome,
	// not the speed (BENCHMARKS.md has that).
	waitFor(t, "b lost", 30*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Offline })
	b2 := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "b back", 5*time.Second, func() bool { p, _ := a.peer(b2.m.ID()); return p.State == Available })
	if n := len(a.m.Peers()); n != 1 {
		t.Fatalf("a lists %d peers after bob restarted, want 1", n)
	}
	// Each run is verified on its own, so the restart is verified again.
	waitFor(t, "new run verified", 5*time.Second, func() bool { return count(a.changes(b2.m.ID()), Verified) == 2 })
	changes := a.changes(b2.m.ID())
	if want := []Change{Joined, Verified, Lost, Returned, Verified}; !slices.Equal(changes, want) {
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
	// The old run's death must not mark the peer offline. memberlist
	// drops a member from Members only after it has queued NotifyLeave,
	// and a's later news of b2 is applied after that leave, so once it
	// arrives the leave has been through the peer table.
	waitFor(t, "old run declared dead", 10*time.Second, func() bool {
		a.m.mu.Lock()
		ml := a.m.ml
		a.m.mu.Unlock()
		return !slices.ContainsFunc(ml.Members(), func(n *memberlist.Node) bool { return n.Name == b.m.member })
	})
	if err := b2.m.SetPresence(Away, "back"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "later news of the new run", 5*time.Second, func() bool {
		return a.saw(b2.m.ID(), func(e Event) bool { return e.Change == Updated && e.Peer.State == Away })
	})
	if p, _ := a.peer(b2.m.ID()); !p.Online() {
		t.Fatalf("peer shown %v after its old run died", p.State)
	}
	changes := a.changes(b2.m.ID())
	returned := slices.Index(changes, Returned)
	if returned < 0 || slices.Contains(changes[returned:], Lost) || slices.Contains(changes[returned:], Departed) {
		t.Fatalf("events %v: the new run was reported gone", changes)
	}
}

func TestVerifiedEventOncePerRun(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	b := startNode(t, t.TempDir(), "bob", a.gossipAddr())
	waitFor(t, "a publishes bob verified", 5*time.Second, func() bool {
		return a.saw(b.m.ID(), func(e Event) bool { return e.Change == Verified && e.Peer.Verified && e.Peer.Name == "bob" })
	})
	if p, _ := a.peer(b.m.ID()); !p.Verified {
		t.Fatal("Verified event published before the peer table says so")
	}
	// A stream proves the key again; that must not be a second event.
	s, err := a.m.Dial(context.Background(), b.m.ID(), ALPNPing)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The Dial's proof is queued before b's change of presence reaches a,
	// so once that change is seen the proof has been through the table.
	if err := b.m.SetPresence(Busy, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob busy", 5*time.Second, func() bool {
		return a.saw(b.m.ID(), func(e Event) bool { return e.Change == Updated && e.Peer.State == Busy })
	})
	changes := a.changes(b.m.ID())
	if changes[0] != Joined || changes[1] != Verified || count(changes, Verified) != 1 {
		t.Fatalf("events %v, want joined, verified (once), status", changes)
	}
}

func TestTakenPortsFallBackToFreeOnes(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	takeTCP := func(t *testing.T) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	takeUDP := func(t *testing.T) int {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	cases := []struct {
		name        string
		take        func(*testing.T) int
		gossip, tls bool // which preferred port is the taken one
	}{
		{name: "gossip port taken on TCP", take: takeTCP, gossip: true},
		{name: "gossip port taken on UDP", take: takeUDP, gossip: true},
		{name: "TLS port taken", take: takeTCP, tls: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			taken := tc.take(t)
			listen := func(fallback bool) (*Mesh, error) {
				id, err := LoadOrCreateIdentity(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				cfg := DefaultConfig()
				cfg.Identity, cfg.Name, cfg.AdvertiseAddr = id, "alice", lo
				cfg.GossipPort, cfg.TLSPort, cfg.PortFallback = 0, 0, fallback
				if tc.gossip {
					cfg.GossipPort = taken
				}
				if tc.tls {
					cfg.TLSPort = taken
				}
				cfg.Logger = testLogger(t)
				m, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close() })
				return m, m.Listen()
			}
			m, err := listen(true)
			if err != nil {
				t.Fatalf("listen with fallback: %v", err)
			}
			g, tp := m.Ports()
			if g == 0 || tp == 0 || g == taken || tp == taken {
				t.Fatalf("ports %d, %d with %d taken", g, tp, taken)
			}
			if _, err := listen(false); !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("listen without fallback: %v, want EADDRINUSE", err)
			}
		})
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
