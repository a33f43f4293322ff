package mesh

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// gateFixture is a gate with a clock the test moves.
type gateFixture struct {
	t   *testing.T
	g   *gate
	q   *eventQueue
	now time.Time
}

func newGateFixture(t *testing.T, lim gateLimits) *gateFixture {
	f := &gateFixture{t: t, q: newEventQueue(), now: time.Unix(1_000_000, 0)}
	f.g = newGate(runOf(selfID, 1), selfID, lim, f.q)
	f.g.now = func() time.Time { return f.now }
	return f
}

// alive runs one alive message through the gate and, when it is taken,
// tells the gate that memberlist now holds the run (as NotifyJoin would).
func (f *gateFixture) alive(n *memberlist.Node) error {
	err := f.g.admit(n)
	if err == nil {
		f.g.joined(n)
	}
	return err
}

func (f *gateFixture) events() []memberEvent {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	out := f.q.items
	f.q.items = nil
	return out
}

var lotsOfRoom = gateLimits{maxPeers: 100, maxUnverified: 100, maxPerAddr: 100}

func at(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 7480)
}

func TestGateRefusesReplays(t *testing.T) {
	f := newGateFixture(t, lotsOfRoom)
	bob := testIdentity(t)
	run1, run2 := runOf(bob.ID, 1), runOf(bob.ID, 2)
	m := testMeta()
	seq1 := signedNode(t, bob, run1, m, at(1))
	m.Seq, m.Status = 2, "later"
	seq2 := signedNode(t, bob, run1, m, at(1))
	m.Status = "same seq, other words"
	seq2b := signedNode(t, bob, run1, m, at(1))

	if err := f.alive(seq1); err != nil {
		t.Fatal(err)
	}
	if err := f.alive(seq1); err != nil {
		t.Fatalf("a repeat (a refutation, a retransmit): %v", err)
	}
	if err := f.alive(seq2); err != nil {
		t.Fatal(err)
	}
	if evs := f.events(); len(evs) != 1 || evs[0].kind != evMeta {
		t.Fatalf("newer metadata of a live run: events %+v, want one evMeta", evs)
	}
	if err := f.alive(seq1); !errors.Is(err, errGateReplay) {
		t.Errorf("seq 1 after seq 2: %v", err)
	}
	if err := f.alive(seq2b); !errors.Is(err, errGateReplay) {
		t.Errorf("two metadata of one seq: %v", err)
	}

	// A newer run; then the older one is refused while the newer lives,
	// and for runMemory after it was last heard of.
	m2 := testMeta()
	m2.Started = 2000
	if err := f.alive(signedNode(t, bob, run2, m2, at(2))); err != nil {
		t.Fatal(err)
	}
	f.g.died(seq1)
	f.now = f.now.Add(deadRunMemory + time.Second)
	f.g.pruneRuns(f.now)
	if err := f.alive(seq2); !errors.Is(err, errGateReplay) {
		t.Errorf("the older run while a newer lives: %v", err)
	}
	f.g.died(&memberlist.Node{Name: run2})
	f.now = f.now.Add(runMemory / 2)
	if err := f.alive(seq2); !errors.Is(err, errGateReplay) {
		t.Errorf("the older run soon after the newer died: %v", err)
	}
	// A peer whose clock went back between runs is taken again in the end.
	f.now = f.now.Add(runMemory)
	if err := f.alive(seq2); err != nil {
		t.Errorf("an older start long after the newer run was last heard of: %v", err)
	}
}

func TestGateRefusesForgeries(t *testing.T) {
	f := newGateFixture(t, lotsOfRoom)
	bob, mallory := testIdentity(t), testIdentity(t)
	run := runOf(bob.ID, 1)
	good := signedNode(t, bob, run, testMeta(), at(1))
	moved := *good
	moved.Addr = at(9).Addr().AsSlice()
	for name, n := range map[string]*memberlist.Node{
		"signed by another key":    signedNode(t, mallory, run, testMeta(), at(1)),
		"signed for another run":   {Name: run, Addr: at(1).Addr().AsSlice(), Port: 7480, Meta: signedNode(t, bob, runOf(bob.ID, 2), testMeta(), at(1)).Meta},
		"another address":          &moved,
		"our own id":               signedNode(t, mallory, runOf(selfID, 2), testMeta(), at(1)),
		"no lanchat name":          {Name: "web-server", Meta: good.Meta},
		"unsigned version 1":       {Name: run, Addr: at(1).Addr().AsSlice(), Port: 7480, Meta: []byte("L\x01\x01\x1d\x29\x00\x00\x00\x00\x00\x00\x00\x01\x00\x03bob\x00")},
		"garbage":                  {Name: run, Addr: at(1).Addr().AsSlice(), Port: 7480, Meta: []byte("hello")},
		"another protocol version": signedNode(t, bob, run, Meta{Proto: ProtocolVersion + 1, TLSPort: 1, Started: 1, Seq: 1, Name: "bob"}, at(1)),
	} {
		if err := f.alive(n); err == nil {
			_, verr := VerifyMeta(n.Name, n.Meta)
			t.Errorf("%s: taken (%s, verify %v)", name, n.Name, verr)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if err := f.alive(good); err != nil {
		t.Fatal(err)
	}
	if err := f.g.checkMerge([]*memberlist.Node{good, signedNode(t, mallory, runOf(bob.ID, 3), testMeta(), at(1))}); err == nil {
		t.Error("a join's state with a forged member was merged")
	}
	if err := f.g.checkMerge([]*memberlist.Node{good, {Name: runOf(selfID, 1)}, {Name: runOf(selfID, 2)}}); err != nil {
		t.Errorf("an honest state: %v", err)
	}
}

func TestGateRefusesARunThatLeft(t *testing.T) {
	f := newGateFixture(t, lotsOfRoom)
	bob := testIdentity(t)
	run := runOf(bob.ID, 1)
	n := signedNode(t, bob, run, testMeta(), at(1))
	if err := f.alive(n); err != nil {
		t.Fatal(err)
	}
	_, sig, _ := decodeLeaveIntent(encodeLeaveIntent(run, bob.Key))
	if !f.g.leaving(run, sig) {
		t.Fatal("goodbye refused")
	}
	f.g.died(n)
	// memberlist forgets it; a replay would look new to it.
	f.now = f.now.Add(deadRunMemory + time.Second)
	f.g.pruneRuns(f.now)
	if err := f.alive(n); !errors.Is(err, errGateReplay) {
		t.Fatalf("a run that said goodbye, replayed: %v", err)
	}
}

func TestGateCaps(t *testing.T) {
	f := newGateFixture(t, gateLimits{maxPeers: 4, maxUnverified: 2, maxPerAddr: 2})
	ids := make([]*Identity, 6)
	for i := range ids {
		ids[i] = testIdentity(t)
	}
	node := func(i, run, addr int) *memberlist.Node {
		m := testMeta()
		m.Started = int64(1000 + run)
		return signedNode(t, ids[i], runOf(ids[i].ID, uint64(run)), m, at(addr))
	}
	if err := f.alive(node(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.alive(node(1, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := f.alive(node(2, 1, 3)); !errors.Is(err, errGateCap) {
		t.Fatalf("a third unverified member: %v", err)
	}
	f.g.verified(runOf(ids[0].ID, 1))
	f.g.verified(runOf(ids[1].ID, 1))
	if err := f.alive(node(2, 1, 1)); err != nil {
		t.Fatalf("room once two were verified: %v", err)
	}
	if err := f.alive(node(3, 1, 1)); !errors.Is(err, errGateCap) {
		t.Fatalf("a third member at one address: %v", err)
	}
	// Runs of one peer: a restart beside the dying run, not a third.
	if err := f.alive(node(1, 2, 4)); err != nil {
		t.Fatal(err)
	}
	f.g.verified(runOf(ids[1].ID, 2))
	f.g.verified(runOf(ids[2].ID, 1))
	if err := f.alive(node(1, 3, 5)); !errors.Is(err, errGateCap) {
		t.Fatalf("a third live run of one peer: %v", err)
	}
	if refused, _ := f.g.takeRefused(); !refused {
		t.Error("refusals for a cap are not reported")
	}
	// Peers: 3 known, cap 4. A fourth is taken; a fifth only once an
	// offline one can be forgotten, the one never verified first.
	if err := f.alive(node(3, 1, 6)); err != nil {
		t.Fatal(err)
	}
	if err := f.alive(node(4, 1, 7)); !errors.Is(err, errGateCap) {
		t.Fatalf("a fifth peer while all four are live: %v", err)
	}
	f.g.died(node(0, 1, 1)) // verified
	f.g.died(node(3, 1, 6)) // never verified
	f.events()              // drop what came before
	if err := f.alive(node(4, 1, 7)); err != nil {
		t.Fatalf("a fifth peer with two offline: %v", err)
	}
	evs := f.events()
	if len(evs) != 1 || evs[0].kind != evForget || evs[0].name[:IDLen] != ids[3].ID {
		t.Fatalf("events %+v, want the unverified offline peer forgotten", evs)
	}
	if peers, _ := f.g.counts(); peers != 4 {
		t.Fatalf("%d peers known, cap 4", peers)
	}
}

// TestGateBoundsRunsMemberlistNeverTook: an alive at incarnation 0 passes
// the gate and is then dropped by memberlist, so no NotifyJoin follows; a
// flood of those, one key and ever new nonces, must not grow the gate.
func TestGateBoundsRunsMemberlistNeverTook(t *testing.T) {
	f := newGateFixture(t, gateLimits{maxPeers: 10, maxUnverified: 10, maxPerAddr: 10})
	mallory := testIdentity(t)
	for i := range 1000 {
		_ = f.g.admit(signedNode(t, mallory, runOf(mallory.ID, uint64(i)), testMeta(), at(1)))
	}
	f.g.mu.Lock()
	runs, ids := len(f.g.runs), len(f.g.ids)
	f.g.mu.Unlock()
	if runs > 20 || ids > 10 {
		t.Fatalf("%d runs and %d ids kept, caps 20 and 10", runs, ids)
	}
}
