package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

func testReconnector(rnd func() float64) *reconnector {
	if rnd == nil {
		rnd = func() float64 { return 0.5 }
	}
	return newReconnector(reconnectConfig{
		base: time.Second, maxDelay: 20 * time.Second, gap: time.Second,
		horizon: 72 * time.Hour, maxInFlight: 4,
	}, rnd)
}

func tlsAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 7481)
}

func lose(r *reconnector, i int, now time.Time) string {
	id := fmt.Sprintf("peer%d", i)
	r.lost(id, fmt.Sprintf("10.0.%d.%d:7480", i>>8, i&255), tlsAddr(i), now)
	return id
}

// run drives r with a fake clock from start for d in steps of step, and
// answers every dial with out. It returns the dials made, in order, with
// their times.
func run(r *reconnector, start time.Time, d, step time.Duration, out func(dialPlan) dialOutcome) (plans []dialPlan, at []time.Time) {
	for now := start; now.Before(start.Add(d)); now = now.Add(step) {
		for {
			p, ok := r.next(now)
			if !ok {
				break
			}
			plans, at = append(plans, p), append(at, now)
			r.done(p, out(p), now)
		}
	}
	return plans, at
}

func failAll(dialPlan) dialOutcome { return dialFailed }

func TestReconnectBacksOffExponentiallyToTheCap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rnd    float64
		lo, hi float64 // the delay is in [lo·d, hi·d] of the nominal d
	}{
		{"jitter low", 0, 0.5, 0.5},
		{"jitter high", 0.999, 0.99, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testReconnector(func() float64 { return tc.rnd })
			id := lose(r, 1, t0)
			_, at := run(r, t0, 10*time.Minute, 10*time.Millisecond, failAll)
			if len(at) < 10 {
				t.Fatalf("%d dials in 10 minutes", len(at))
			}
			prev := t0
			nominal := time.Second
			for i, a := range at {
				gap := a.Sub(prev)
				lo := time.Duration(tc.lo * float64(nominal))
				hi := time.Duration(tc.hi*float64(nominal)) + 10*time.Millisecond
				if gap < lo || gap > hi {
					t.Fatalf("dial %d of %s came %v after the last, want %v to %v", i, id, gap, lo, hi)
				}
				prev = a
				nominal = min(nominal*2, 20*time.Second)
			}
		})
	}
}

func TestReconnectBoundsTheNodesDialsHoweverManyAreLost(t *testing.T) {
	r := testReconnector(nil)
	for i := range 200 {
		lose(r, i, t0)
	}
	const window = 5 * time.Minute
	plans, at := run(r, t0, window, 10*time.Millisecond, failAll)
	if max := int(window/time.Second) + 1; len(plans) > max {
		t.Fatalf("%d dials in %v, want at most %d (one a second)", len(plans), window, max)
	}
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < time.Second {
			t.Fatalf("dials %d and %d only %v apart", i-1, i, d)
		}
	}
	// Every lost peer gets its turn: none is starved by the others.
	seen := map[string]int{}
	for _, p := range plans {
		seen[p.id]++
	}
	if len(seen) != 200 {
		t.Fatalf("%d of 200 lost peers dialled in %v", len(seen), window)
	}
}

func TestReconnectKeepsAtMostMaxInFlight(t *testing.T) {
	r := testReconnector(nil)
	for i := range 10 {
		lose(r, i, t0)
	}
	var held []dialPlan
	for now := t0; now.Before(t0.Add(time.Minute)); now = now.Add(100 * time.Millisecond) {
		if p, ok := r.next(now); ok {
			held = append(held, p) // never done: dials that hang
		}
	}
	if len(held) != 4 {
		t.Fatalf("%d dials in flight, want 4", len(held))
	}
	if _, ok := r.wait(t0.Add(time.Minute)); ok {
		t.Fatal("wait reports work while every dial slot is taken")
	}
	r.done(held[0], dialFailed, t0.Add(time.Minute))
	if _, ok := r.next(t0.Add(time.Minute + time.Second)); !ok {
		t.Fatal("no dial after one of four finished")
	}
}

func TestReconnectForgetsPeersPastTheHorizon(t *testing.T) {
	r := testReconnector(nil)
	lose(r, 1, t0)
	r.seed("seed.example:7480", t0)
	late := t0.Add(72*time.Hour + time.Second)
	var ids []string
	for now := late; now.Before(late.Add(time.Minute)); now = now.Add(time.Second) {
		if p, ok := r.next(now); ok {
			ids = append(ids, p.id)
			r.done(p, dialFailed, now)
		}
	}
	for _, id := range ids {
		if id != "" {
			t.Fatalf("dialled %s past the horizon", id)
		}
	}
	if len(ids) == 0 {
		t.Fatal("the seed was forgotten; seeds are kept")
	}
	if _, ok := r.peers["peer1"]; ok {
		t.Fatal("peer1 still scheduled")
	}
}

func TestReconnectDialsALongLostPeerOftenEnoughToHealASplit(t *testing.T) {
	// A split of two nodes: each sees the other as lost for an hour. Once
	// it heals, the next dial must come within the cap.
	r := testReconnector(func() float64 { return 0.999 })
	lose(r, 1, t0)
	_, at := run(r, t0, time.Hour, 100*time.Millisecond, failAll)
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d > 20*time.Second+100*time.Millisecond {
			t.Fatalf("dials %v apart after %v lost", d, at[i].Sub(t0))
		}
	}
}

func TestReconnectRetiresAnAddressHeldByAnotherIdentity(t *testing.T) {
	r := testReconnector(nil)
	lose(r, 1, t0)
	lose(r, 2, t0)
	plans, _ := run(r, t0, time.Minute, 100*time.Millisecond, func(p dialPlan) dialOutcome {
		if p.id == "peer1" {
			return dialWrongKey
		}
		return dialFailed
	})
	n := 0
	for _, p := range plans {
		if p.id == "peer1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("peer1 dialled %d times, want once: its address answered with another key", n)
	}
	if _, ok := r.peers["peer2"]; !ok {
		t.Fatal("peer2 dropped along with peer1")
	}
}

func TestReconnectStopsWhenThePeerIsBack(t *testing.T) {
	r := testReconnector(nil)
	id := lose(r, 1, t0)
	p, ok := r.next(t0.Add(time.Second))
	if !ok {
		t.Fatal("no dial")
	}
	r.found(id) // the peer came back (by another node's join) during the dial
	r.done(p, dialReached, t0.Add(2*time.Second))
	if r.inFlight != 0 || len(r.peers) != 0 {
		t.Fatalf("after found: %d in flight, %d scheduled", r.inFlight, len(r.peers))
	}
	if _, ok := r.wait(t0); ok {
		t.Fatal("something still scheduled")
	}
	// Lost again: a fresh schedule, from the first delay.
	lose(r, 1, t0.Add(time.Hour))
	if _, ok := r.next(t0.Add(time.Hour + 999*time.Millisecond)); !ok {
		t.Fatal("no dial within the first delay of a new loss")
	}
}

func TestReconnectWaitSaysWhenTheNextDialIsDue(t *testing.T) {
	r := testReconnector(func() float64 { return 0 })
	lose(r, 1, t0)
	if d, ok := r.wait(t0); !ok || d != 500*time.Millisecond {
		t.Fatalf("wait = %v, %v; want 500ms", d, ok)
	}
	p, _ := r.next(t0.Add(500 * time.Millisecond))
	lose(r, 2, t0.Add(500*time.Millisecond))
	r.done(p, dialFailed, t0.Add(600*time.Millisecond))
	// peer2 is due at 1 s, but the node's next slot is at 1.5 s.
	if d, ok := r.wait(t0.Add(600 * time.Millisecond)); !ok || d != 900*time.Millisecond {
		t.Fatalf("wait = %v, %v; want 900ms", d, ok)
	}
}

// onPorts starts the node on the given ports, without falling back.
func onPorts(gossip, tls int) func(*Config) {
	return func(c *Config) { c.GossipPort, c.TLSPort, c.PortFallback = gossip, tls, false }
}

func TestLostPeerIsDialledBackWithoutJoiningItself(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	dir := t.TempDir()
	b := startNode(t, dir, "bob", a.gossipAddr())
	// Verified: a peer never proven to be anyone is not dialled back.
	waitFor(t, "b verified", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Online() && p.Verified })
	g, tp := b.m.Ports()
	b.m.Close() // a crash: no goodbye
	waitFor(t, "b lost", 30*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Offline })
	// bob comes back where he was, knowing nobody: only a's dial can
	// bring the two together (as after a healed split).
	b2 := startNodeWith(t, dir, "bob", onPorts(g, tp))
	waitFor(t, "a dials b back", 30*time.Second, func() bool { p, _ := a.peer(b2.m.ID()); return p.Online() })
	waitFor(t, "b sees a", 5*time.Second, func() bool { p, _ := b2.peer(a.m.ID()); return p.Online() })
	a.m.mu.Lock()
	_, scheduled := a.m.recon.peers[b.m.ID()]
	a.m.mu.Unlock()
	if scheduled {
		t.Fatal("b is back but still on a's reconnect schedule")
	}
}

func TestReconnectRetiresAnAddressNowHeldByAnotherIdentity(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	b := startNode(t, t.TempDir(), "bob", a.gossipAddr())
	waitFor(t, "b verified", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Online() && p.Verified })
	g, tp := b.m.Ports()
	b.m.Close()
	waitFor(t, "b lost", 30*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Offline })
	// Another machine takes bob's address (a DHCP lease handed on).
	c := startNodeWith(t, t.TempDir(), "carol", onPorts(g, tp))
	waitFor(t, "b's address retired", 30*time.Second, func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		_, ok := a.m.recon.peers[b.m.ID()]
		return !ok
	})
	if _, ok := a.peer(c.m.ID()); ok {
		t.Fatal("a joined carol at bob's old address")
	}
	if p, _ := a.peer(b.m.ID()); p.Online() {
		t.Fatal("bob shown online")
	}
}

// TestJoinDoesNotWaitBehindDeadDials: with the reconnect schedule full of
// addresses that accept a connection and then never answer (every dial
// hangs until its timeout), a candidate from discovery is still joined at
// once.
func TestJoinDoesNotWaitBehindDeadDials(t *testing.T) {
	tar, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tar.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := tar.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	a := startNode(t, t.TempDir(), "alice")
	hang := netip.MustParseAddrPort(tar.Addr().String())
	a.m.mu.Lock()
	for i := range 20 {
		a.m.recon.lost(fmt.Sprintf("ghost%d", i), hang.String(), hang, time.Now().Add(-time.Minute))
	}
	a.m.mu.Unlock()
	a.m.wakeReconnect()
	waitFor(t, "reconnect dials in flight", 5*time.Second, func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		return a.m.recon.inFlight > 0
	})
	b := startNode(t, t.TempDir(), "bob")
	start := time.Now()
	a.m.AddCandidate(b.m.ID(), b.gossipAddr())
	waitFor(t, "a joins b", 5*time.Second, func() bool { p, ok := a.peer(b.m.ID()); return ok && p.Online() })
	if d := time.Since(start); d > time.Second {
		t.Fatalf("joining a candidate took %v behind hanging reconnect dials", d)
	}
}
