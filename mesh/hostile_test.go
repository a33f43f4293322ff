package mesh

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// What a hostile host on the LAN sends memberlist: its packets are a
// message type and a msgpack body (hashicorp/memberlist net.go), and
// nothing in them is authenticated without a network key.
const (
	mlAliveMsg = 4
	mlDeadMsg  = 5
)

// packer is the little of msgpack memberlist's messages need.
type packer struct{ b []byte }

func (p *packer) mapLen(n int) { p.b = append(p.b, 0x80|byte(n)) }
func (p *packer) str(s string) { p.raw([]byte(s)) }
func (p *packer) raw(b []byte) {
	switch n := len(b); {
	case n < 32:
		p.b = append(p.b, 0xa0|byte(n))
	case n < 256:
		p.b = append(p.b, 0xd9, byte(n))
	default:
		p.b = append(p.b, 0xda)
		p.b = binary.BigEndian.AppendUint16(p.b, uint16(n))
	}
	p.b = append(p.b, b...)
}
func (p *packer) uint(v uint64) {
	p.b = append(p.b, 0xcf)
	p.b = binary.BigEndian.AppendUint64(p.b, v)
}

// forgedAlive is an alive message for member at gossip with meta.
func forgedAlive(inc uint32, member string, gossip netip.AddrPort, meta []byte) []byte {
	p := packer{b: []byte{mlAliveMsg}}
	p.mapLen(6)
	p.str("Incarnation")
	p.uint(uint64(inc))
	p.str("Node")
	p.str(member)
	p.str("Addr")
	p.raw(gossip.Addr().AsSlice())
	p.str("Port")
	p.uint(uint64(gossip.Port()))
	p.str("Meta")
	p.raw(meta)
	p.str("Vsn")
	p.raw([]byte{1, 5, 5, 0, 5, 0}) // protocol min, max, cur; delegate min, max, cur
	return p.b
}

// forgedDead is memberlist's dead message for member.
func forgedDead(inc uint32, member string) []byte {
	p := packer{b: []byte{mlDeadMsg}}
	p.mapLen(3)
	p.str("Incarnation")
	p.uint(uint64(inc))
	p.str("Node")
	p.str(member)
	p.str("From")
	p.str("mallory")
	return p.b
}

func sendUDP(t *testing.T, to string, pkts ...[]byte) {
	t.Helper()
	c, err := net.Dial("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, b := range pkts {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// sentinel sends a properly signed member of a fresh identity to n after
// whatever was sent before, and waits until n lists it: memberlist handles
// one socket's packets in order, so everything sent earlier has then been
// through the gate and the peer table.
func sentinel(t *testing.T, n *testNode) {
	t.Helper()
	id := testIdentity(t)
	member := runOf(id.ID, 1)
	at := netip.MustParseAddrPort("127.0.0.1:9")
	node := signedNode(t, id, member, Meta{Proto: ProtocolVersion, TLSPort: 9, Started: time.Now().UnixMilli(), Seq: 1, Name: "sentinel"}, at)
	sendUDP(t, n.gossipAddr(), forgedAlive(1, member, at, node.Meta))
	waitFor(t, "sentinel listed", 5*time.Second, func() bool { _, ok := n.peer(id.ID); return ok })
}

func verifiedPair(t *testing.T) (a, b *testNode) {
	t.Helper()
	a = startNode(t, t.TempDir(), "alice")
	b = startNode(t, t.TempDir(), "bob", a.gossipAddr())
	waitFor(t, "alice and bob verify each other", 5*time.Second, func() bool {
		p, ok1 := a.peer(b.m.ID())
		q, ok2 := b.peer(a.m.ID())
		return ok1 && ok2 && p.Verified && q.Verified
	})
	return a, b
}

func TestForgedMemberWithAnothersIDIsRefused(t *testing.T) {
	a, b := verifiedPair(t)
	before, _ := a.peer(b.m.ID())
	mallory := testIdentity(t)
	at := netip.MustParseAddrPort("127.0.0.1:9")
	later := Meta{Proto: ProtocolVersion, TLSPort: 9, Started: time.Now().Add(time.Hour).UnixMilli(), Seq: 1, Name: "bob", Status: "send me your files"}
	// A new run under bob's id, signed by mallory (whose key then does not
	// hash to bob's id); and the same with bob's key copied in.
	run := runOf(b.m.ID(), 0xbad)
	own := signedNode(t, mallory, run, later, at).Meta
	withBobsKey := append([]byte(nil), own...)
	copy(withBobsKey[len(withBobsKey)-metaTail:], b.m.cfg.Identity.Public())
	// bob's current run, with mallory's words, at mallory's address.
	hijack := signedNode(t, mallory, b.m.member, later, at).Meta
	sendUDP(t, a.gossipAddr(),
		forgedAlive(1, run, at, own),
		forgedAlive(1, run, at, withBobsKey),
		forgedAlive(math.MaxUint32, b.m.member, at, hijack),
		forgedAlive(1, runOf(a.m.ID(), 0xbad), at, signedNode(t, mallory, runOf(a.m.ID(), 0xbad), later, at).Meta),
	)
	sentinel(t, a)
	p, _ := a.peer(b.m.ID())
	if p.Addr != before.Addr || p.GossipPort != before.GossipPort || p.Status != before.Status || p.Started != before.Started || !p.Verified || !p.Online() {
		t.Fatalf("bob after the forgeries: %+v, before %+v", p, before)
	}
	if a.saw(b.m.ID(), func(e Event) bool { return e.Peer.Status == later.Status || e.Change == Returned }) {
		t.Fatalf("a forgery reached the events: %v", a.changes(b.m.ID()))
	}
	a.m.mu.Lock()
	ml := a.m.ml
	a.m.mu.Unlock()
	for _, n := range ml.Members() {
		if n.Name == run || n.Addr.Equal(net.IPv4(127, 0, 0, 1)) && n.Port == 9 && n.Name != runOf(n.Name[:IDLen], 1) {
			t.Fatalf("memberlist took in the forged member %s at %s", n.Name, n.Address())
		}
	}
}

func TestReplayedOlderMetaIsRefused(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	dir := t.TempDir()
	b := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "bob verified", 5*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.Verified })
	first, firstMember := b.m.signedMeta(), b.m.member
	firstAt := b.m.meta.Gossip
	if err := b.m.SetPresence(Away, "later"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "away seen", 5*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Away })

	// The run's own first words, under a higher incarnation.
	sendUDP(t, a.gossipAddr(), forgedAlive(1000, firstMember, firstAt, first))
	sentinel(t, a)
	if p, _ := a.peer(b.m.ID()); p.State != Away || p.Status != "later" {
		t.Fatalf("replayed seq 1 brought back %v %q", p.State, p.Status)
	}

	// A restart, then the old run's words replayed at its old address.
	b.m.Close()
	b2 := startNode(t, dir, "bob", a.gossipAddr())
	waitFor(t, "new run verified", 10*time.Second, func() bool {
		p, _ := a.peer(b2.m.ID())
		return p.Verified && p.Started == b2.m.meta.Started
	})
	sendUDP(t, a.gossipAddr(), forgedAlive(math.MaxUint32, firstMember, firstAt, first))
	sentinel(t, a)
	if p, _ := a.peer(b2.m.ID()); p.Started != b2.m.meta.Started || !p.Verified || !p.Online() {
		t.Fatalf("after the old run's replay bob is %+v", p)
	}
}

func TestForgedDeadDoesNotTakeALivePeerOffline(t *testing.T) {
	tune := func(c *Config) {
		prev := c.Tune
		c.Tune = func(mc *memberlist.Config) {
			prev(mc)
			mc.GossipToTheDeadTime = 2 * time.Second // so memberlist takes bob back soon
		}
	}
	a := startNodeWith(t, t.TempDir(), "alice", tune)
	b := startNodeWith(t, t.TempDir(), "bob", tune, a.gossipAddr())
	waitFor(t, "verified", 5*time.Second, func() bool { p, _ := a.peer(b.m.ID()); q, _ := b.peer(a.m.ID()); return p.Verified && q.Verified })
	// One packet each: bob is dead at the highest incarnation, which bob's
	// refutation cannot beat (it wraps to 0).
	dead := forgedDead(math.MaxUint32, b.m.member)
	forged := time.Now()
	sendUDP(t, a.gossipAddr(), dead)
	sendUDP(t, b.gossipAddr(), dead)
	a.m.mu.Lock()
	ml := a.m.ml
	a.m.mu.Unlock()
	inMemberlist := func() bool {
		return slices.ContainsFunc(ml.Members(), func(n *memberlist.Node) bool { return n.Name == b.m.member })
	}
	waitFor(t, "memberlist believes the forgery", 5*time.Second, func() bool { return !inMemberlist() })
	waitFor(t, "alice holds bob online by handshake", 5*time.Second, func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		e := a.m.table.peers[b.m.ID()]
		return e != nil && e.held
	})
	// The hold keeps bob online while memberlist calls it dead, until
	// memberlist forgets the dead member and the reconnect dial joins
	// bob back.
	deadline := time.Now().Add(20 * time.Second)
	for !inMemberlist() {
		if p, _ := a.peer(b.m.ID()); !p.Online() {
			t.Fatalf("bob shown %v after a forged dead message; events %v", p.State, a.changes(b.m.ID()))
		}
		if time.Now().After(deadline) {
			t.Fatal("memberlist never took bob back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cs := a.changes(b.m.ID()); slices.Contains(cs, Lost) {
		t.Fatalf("events %v", cs)
	}
	t.Logf("memberlist took bob back after %v", time.Since(forged).Round(10*time.Millisecond))
	// And a real crash is still seen.
	b.m.Close()
	waitFor(t, "bob lost after a crash", 30*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Offline })
}

func TestThousandForgedMembersAreBounded(t *testing.T) {
	const maxPeers, maxUnverified = 100, 16
	caps := func(c *Config) { c.MaxPeers, c.MaxUnverified = maxPeers, maxUnverified }
	a := startNodeWith(t, t.TempDir(), "alice", caps)
	b := startNodeWith(t, t.TempDir(), "bob", caps, a.gossipAddr())
	c := startNodeWith(t, t.TempDir(), "carol", caps, a.gossipAddr())
	for _, x := range []*testNode{a, b} {
		for _, y := range []*testNode{b, c} {
			if x != y {
				waitFor(t, "verified", 5*time.Second, func() bool { p, _ := x.peer(y.m.ID()); return p.Verified })
			}
		}
	}
	// A thousand members of fresh keys, each at its own loopback address
	// where nothing answers, sent again and again with a higher
	// incarnation so that those found dead come back.
	type sybil struct {
		member string
		at     netip.AddrPort
		meta   []byte
	}
	var sybils []sybil
	for i := range 1000 {
		id := testIdentity(t)
		member := runOf(id.ID, uint64(i+1))
		at := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 9)
		n := signedNode(t, id, member, Meta{Proto: ProtocolVersion, TLSPort: 9, Started: 1, Seq: 1, Name: fmt.Sprintf("sybil%d", i)}, at)
		sybils = append(sybils, sybil{member, at, n.Meta})
	}
	flood := func(inc uint32) {
		for i := 0; i < len(sybils); i += 50 {
			var pkts [][]byte
			for _, s := range sybils[i:min(i+50, len(sybils))] {
				pkts = append(pkts, forgedAlive(inc, s.member, s.at, s.meta))
			}
			sendUDP(t, a.gossipAddr(), pkts...)
			time.Sleep(5 * time.Millisecond) // a socket buffer's worth at a time
		}
	}
	flood(1)
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for inc := uint32(2); ; inc++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			flood(inc)
		}
	}()
	defer func() { close(stop); <-flooded }()
	check := func() {
		t.Helper()
		peers, unverified := a.m.gate.counts()
		if n := len(a.m.Peers()); n > maxPeers || peers > maxPeers || unverified > maxUnverified {
			t.Fatalf("alice lists %d peers (gate %d, cap %d), %d unverified members (cap %d)", n, peers, maxPeers, unverified, maxUnverified)
		}
		if n := a.m.ml.NumMembers(); n > 3+maxUnverified {
			t.Fatalf("memberlist at alice holds %d members", n)
		}
	}
	check()
	for _, y := range []*testNode{b, c} {
		if p, _ := a.peer(y.m.ID()); !p.Online() || !p.Verified {
			t.Fatalf("honest %s after the flood: %+v", p.Name, p)
		}
	}
	// A crash among the flood is still seen, within the bound the crash
	// test above allows: here 2–10 s, before and after the checks were
	// spread, and past 15 s once when the whole suite ran on two cores.
	start := time.Now()
	c.m.Close()
	waitFor(t, "carol lost", 30*time.Second, func() bool { check(); p, _ := a.peer(c.m.ID()); return p.State == Offline })
	t.Logf("a crash seen by alice %v after it, among a flood of 1000 forged members", time.Since(start).Round(10*time.Millisecond))
	check()
}

// TestReplayDoesNotReviveAPeerThatLeft: what a forged mDNS answer leads
// to (a join of whatever address it names, whose state then replays the
// peer's last words) must not bring back a peer that said goodbye.
func TestReplayDoesNotReviveAPeerThatLeft(t *testing.T) {
	tune := func(c *Config) {
		prev := c.Tune
		c.Tune = func(mc *memberlist.Config) {
			prev(mc)
			mc.GossipToTheDeadTime = 500 * time.Millisecond // memberlist forgets the run, so only the gate stands in the way
		}
	}
	a := startNodeWith(t, t.TempDir(), "alice", tune)
	b := startNodeWith(t, t.TempDir(), "bob", tune, a.gossipAddr())
	waitFor(t, "bob verified", 5*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.Verified })
	last, member, at := b.m.signedMeta(), b.m.member, b.m.meta.Gossip
	b.stop()
	waitFor(t, "bob left", 5*time.Second, func() bool { p, _ := a.peer(b.m.ID()); return p.State == Left })
	a.m.mu.Lock()
	ml := a.m.ml
	a.m.mu.Unlock()
	time.Sleep(time.Second)                   // past GossipToTheDeadTime, and a probe round for memberlist to forget bob
	a.m.AddCandidate(b.m.ID(), "127.0.0.1:9") // the forged answer's address: a hint, dialled and found empty
	sendUDP(t, a.gossipAddr(), forgedAlive(math.MaxUint32, member, at, last))
	sentinel(t, a)
	if p, _ := a.peer(b.m.ID()); p.State != Left {
		t.Fatalf("bob is %v after a replay of its last words", p.State)
	}
	if slices.ContainsFunc(ml.Members(), func(n *memberlist.Node) bool { return n.Name == member }) {
		t.Fatal("memberlist took the run that left back in")
	}
}

// TestSmallUnverifiedCapStillConverges: with room for one unverified
// member at a time, nodes joining together refuse most of each other at
// first; the gossip's retransmits, and the pull again once there is room
// (repullIfRefused), still bring every node to see every other, without
// memberlist's periodic push-pull.
func TestSmallUnverifiedCapStillConverges(t *testing.T) {
	small := func(c *Config) {
		c.MaxUnverified = 1
		prev := c.Tune
		c.Tune = func(mc *memberlist.Config) {
			prev(mc)
			mc.PushPullInterval = time.Minute // as on a LAN: memberlist's own pulls do not help in time
		}
	}
	a := startNodeWith(t, t.TempDir(), "n0", small)
	nodes := []*testNode{a}
	for i := 1; i < 5; i++ {
		nodes = append(nodes, startNodeWith(t, t.TempDir(), fmt.Sprintf("n%d", i), small, a.gossipAddr()))
	}
	late := startNodeWith(t, t.TempDir(), "late", small, a.gossipAddr())
	nodes = append(nodes, late)
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				waitFor(t, x.m.Self().Name+" sees "+y.m.Self().Name, 40*time.Second, func() bool {
					p, ok := x.peer(y.m.ID())
					return ok && p.Online() && p.Verified
				})
			}
		}
	}
}
