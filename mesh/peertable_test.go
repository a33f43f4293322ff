package mesh

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Peer ids and runs for the peer table's tests. Any 52 base32 characters
// are a well-formed id.
var (
	selfID = strings.Repeat("S", IDLen)
	bobID  = strings.Repeat("B", IDLen)
	bob1   = runOf(bobID, 1)
	bob2   = runOf(bobID, 2)
	addr1  = netip.MustParseAddr("192.0.2.1")
	addr2  = netip.MustParseAddr("192.0.2.2")
)

var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func runOf(id string, n uint64) string { return fmt.Sprintf("%s-%016x", id, n) }

// bobMeta is bob's metadata of run started at started, changed by f.
func bobMeta(t *testing.T, started int64, f func(*Meta)) []byte {
	t.Helper()
	m := Meta{Proto: ProtocolVersion, TLSPort: 7481, Started: started, Seq: 1, Name: "bob", Gossip: netip.MustParseAddrPort("192.0.2.1:7480")}
	if f != nil {
		f(&m)
	}
	// The table trusts the gate for signatures: any key will do.
	b, err := m.Sign(bob1, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func joinEv(member string, addr netip.Addr, meta []byte) memberEvent {
	return memberEvent{kind: evJoin, name: member, addr: addr, port: 7480, meta: meta}
}

func updateEv(member string, addr netip.Addr, meta []byte) memberEvent {
	ev := joinEv(member, addr, meta)
	ev.kind = evUpdate
	return ev
}

func leaveEv(member string) memberEvent  { return memberEvent{kind: evLeave, name: member} }
func intentEv(member string) memberEvent { return memberEvent{kind: evIntent, name: member} }
func verifiedEv(member string, addr netip.Addr, tlsPort uint16) memberEvent {
	return memberEvent{kind: evVerified, name: member, at: netip.AddrPortFrom(addr, tlsPort)}
}

// outcome is what a test expects of one applied event.
type outcome struct {
	change  Change // "" for no event
	verify  bool   // bob's key is to be checked
	relay   bool   // the intent is to be gossiped on
	refused bool   // the news was refused as malformed
}

type step struct {
	ev   memberEvent
	want outcome
}

// endState is what a test expects of bob's entry after the last step.
type endState struct {
	known    bool
	member   string
	state    State
	alive    bool
	verified bool
	live     int // live members, this node included
}

func TestPeerTable(t *testing.T) {
	m100 := bobMeta(t, 100, nil)
	m200 := bobMeta(t, 200, nil)
	away := bobMeta(t, 100, func(m *Meta) { m.State, m.Status = Away, "at lunch" })
	otherTLS := bobMeta(t, 100, func(m *Meta) { m.TLSPort = 9999 })
	garbage := []byte("not lanchat metadata")

	cases := []struct {
		name  string
		steps []step
		end   endState
	}{
		{
			name:  "join",
			steps: []step{{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}}},
			end:   endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name: "update with no visible change asks again to verify but tells no one",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{updateEv(bob1, addr1, m100), outcome{verify: true}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name: "update with no visible change of a verified peer is silent",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{change: Verified}},
				{updateEv(bob1, addr1, m100), outcome{}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, verified: true, live: 2},
		},
		{
			name: "status change",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{change: Verified}},
				{updateEv(bob1, addr1, away), outcome{change: Updated}},
			},
			end: endState{known: true, member: bob1, state: Away, alive: true, verified: true, live: 2},
		},
		{
			name: "restart with a new run returns and is verified again",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{change: Verified}},
				{joinEv(bob2, addr1, m200), outcome{change: Returned, verify: true}},
				{verifiedEv(bob2, addr1, 7481), outcome{change: Verified}},
			},
			end: endState{known: true, member: bob2, state: Available, alive: true, verified: true, live: 2},
		},
		{
			name: "older run still dying is ignored",
			steps: []step{
				{joinEv(bob2, addr1, m200), outcome{change: Joined, verify: true}},
				{joinEv(bob1, addr1, m100), outcome{}},
				{updateEv(bob1, addr1, away), outcome{}},
			},
			end: endState{known: true, member: bob2, state: Available, alive: true, live: 2},
		},
		{
			name: "old run's death after a restart is ignored",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{joinEv(bob2, addr1, m200), outcome{change: Returned, verify: true}},
				{leaveEv(bob1), outcome{}},
			},
			end: endState{known: true, member: bob2, state: Available, alive: true, live: 2},
		},
		{
			name: "lost without a goodbye",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{leaveEv(bob1), outcome{change: Lost}},
			},
			end: endState{known: true, member: bob1, state: Offline, live: 1},
		},
		{
			name: "left: intent before the leave",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{intentEv(bob1), outcome{relay: true}},
				{leaveEv(bob1), outcome{change: Departed}},
			},
			end: endState{known: true, member: bob1, state: Left, live: 1},
		},
		{
			name: "left: intent after failure detection called it lost",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{leaveEv(bob1), outcome{change: Lost}},
				{intentEv(bob1), outcome{change: Departed, relay: true}},
			},
			end: endState{known: true, member: bob1, state: Left, live: 1},
		},
		{
			name: "intent heard twice is relayed once",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{intentEv(bob1), outcome{relay: true}},
				{intentEv(bob1), outcome{}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name: "intent of an older run does not make the new run leave",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{joinEv(bob2, addr1, m200), outcome{change: Returned, verify: true}},
				{intentEv(bob1), outcome{relay: true}},
				{leaveEv(bob1), outcome{}},
			},
			end: endState{known: true, member: bob2, state: Available, alive: true, live: 2},
		},
		{
			name:  "intent for an unknown member is relayed and adds no one",
			steps: []step{{intentEv(bob1), outcome{relay: true}}},
			end:   endState{live: 1},
		},
		{
			name: "return after lost",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{leaveEv(bob1), outcome{change: Lost}},
				{joinEv(bob1, addr1, m100), outcome{change: Returned, verify: true}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name:  "bad metadata ignored",
			steps: []step{{joinEv(bob1, addr1, garbage), outcome{refused: true}}},
			end:   endState{live: 1},
		},
		{
			name: "bad metadata in an update keeps what was known",
			steps: []step{
				{joinEv(bob1, addr1, away), outcome{change: Joined, verify: true}},
				{updateEv(bob1, addr1, garbage), outcome{refused: true}},
			},
			end: endState{known: true, member: bob1, state: Away, alive: true, live: 2},
		},
		{
			name: "our own id ignored",
			steps: []step{
				{joinEv(runOf(selfID, 1), addr1, m100), outcome{}},
				{intentEv(runOf(selfID, 1)), outcome{}},
				{leaveEv(runOf(selfID, 1)), outcome{}},
			},
			end: endState{live: 1},
		},
		{
			name: "a name that is not lanchat's ignored",
			steps: []step{
				{joinEv("bob", addr1, m100), outcome{}},
				{joinEv(bobID+"-nothex0123456789", addr1, m100), outcome{}},
			},
			end: endState{live: 1},
		},
		{
			name: "address change resets verification",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{change: Verified}},
				{updateEv(bob1, addr2, m100), outcome{change: Updated, verify: true}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name: "TLS port change resets verification",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{change: Verified}},
				{updateEv(bob1, addr1, otherTLS), outcome{change: Updated, verify: true}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name: "markVerified fires once",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{change: Verified}},
				{verifiedEv(bob1, addr1, 7481), outcome{}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, verified: true, live: 2},
		},
		{
			name: "markVerified of a run that was replaced proves nothing",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{joinEv(bob2, addr1, m200), outcome{change: Returned, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{}},
			},
			end: endState{known: true, member: bob2, state: Available, alive: true, live: 2},
		},
		{
			name: "markVerified at the address the peer moved away from proves nothing",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{updateEv(bob1, addr2, m100), outcome{change: Updated, verify: true}},
				{verifiedEv(bob1, addr1, 7481), outcome{}},
			},
			end: endState{known: true, member: bob1, state: Available, alive: true, live: 2},
		},
		{
			name: "markVerified of a peer gone offline proves nothing",
			steps: []step{
				{joinEv(bob1, addr1, m100), outcome{change: Joined, verify: true}},
				{leaveEv(bob1), outcome{change: Lost}},
				{verifiedEv(bob1, addr1, 7481), outcome{}},
			},
			end: endState{known: true, member: bob1, state: Offline, live: 1},
		},
		{
			name:  "markVerified of an unknown peer",
			steps: []step{{verifiedEv(bob1, addr1, 7481), outcome{}}},
			end:   endState{live: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newPeerTable(selfID)
			now := time.Unix(1000, 0)
			for i, s := range tc.steps {
				now = now.Add(time.Second)
				r := tb.apply(s.ev, now)
				got := outcome{verify: r.verify == bobID, relay: r.relay == s.ev.name, refused: r.refused != nil}
				if r.event != nil {
					got.change = r.event.Change
					if e := tb.peers[bobID]; e == nil || r.event.Peer != e.Peer {
						t.Errorf("step %d: event carries %+v, table has %+v", i, r.event.Peer, e)
					}
				}
				if r.verify != "" && r.verify != bobID || r.relay != "" && r.relay != s.ev.name {
					t.Errorf("step %d: verify %q, relay %q", i, r.verify, r.relay)
				}
				if got != s.want {
					t.Errorf("step %d (%v %s): got %+v, want %+v", i, s.ev.kind, s.ev.name, got, s.want)
				}
			}
			e := tb.peers[bobID]
			var end endState
			if e != nil {
				end = endState{known: true, member: e.member, state: e.State, alive: e.alive, verified: e.Verified}
			}
			end.live = tb.live
			if end != tc.end {
				t.Errorf("end state %+v, want %+v", end, tc.end)
			}
			if len(tb.peers) > 1 {
				t.Errorf("table has %d peers, want at most bob", len(tb.peers))
			}
		})
	}
}

func TestPeerTableVerifyRetriesAreBounded(t *testing.T) {
	tb := newPeerTable(selfID)
	now := time.Unix(1000, 0)
	tb.apply(joinEv(bob1, addr1, bobMeta(t, 100, nil)), now)
	member, addr, ok := tb.toVerify(bobID)
	if !ok || member != bob1 || addr != netip.AddrPortFrom(addr1, 7481) {
		t.Fatalf("toVerify = %q %v %v", member, addr, ok)
	}
	for i := range maxVerifyTries {
		if !tb.retryVerify(bobID, bob1) {
			t.Fatalf("retry %d refused", i+1)
		}
	}
	if tb.retryVerify(bobID, bob1) {
		t.Fatal("retried beyond maxVerifyTries")
	}
	// A new address is a new claim: it gets its own tries.
	tb.apply(updateEv(bob1, addr2, bobMeta(t, 100, nil)), now)
	if !tb.retryVerify(bobID, bob1) {
		t.Fatal("no retry after an address change")
	}
	if tb.retryVerify(bobID, bob2) {
		t.Fatal("retry counted for a run the table does not follow")
	}
	tb.apply(verifiedEv(bob1, addr2, 7481), now)
	if _, _, ok := tb.toVerify(bobID); ok {
		t.Fatal("toVerify asks to verify a verified peer")
	}
}

func TestPeerTableForgetsOldIntents(t *testing.T) {
	tb := newPeerTable(selfID)
	start := time.Unix(1000, 0)
	tb.apply(intentEv(bob1), start)
	tb.apply(intentEv(bob2), start.Add(forgetLeaving+time.Second))
	if _, ok := tb.leaving[bob1]; ok {
		t.Fatal("intent kept past forgetLeaving")
	}
	if _, ok := tb.leaving[bob2]; !ok {
		t.Fatal("fresh intent forgotten")
	}
}

func checkedEv(member string, addr netip.Addr, ok bool) memberEvent {
	return memberEvent{kind: evChecked, name: member, at: netip.AddrPortFrom(addr, 7481), ok: ok}
}

// refusedEv: the check's connection was refused (nothing listens there).
func refusedEv(member string, addr netip.Addr) memberEvent {
	ev := checkedEv(member, addr, false)
	ev.refused = true
	return ev
}

// TestLossyCheckTimeoutsDoNotLoseAHeldPeer: a run held online against
// gossip is checked every second, and at 20 % packet loss one check now
// and then finds nobody although the peer is up. Only heldMisses such
// silences in a row lose it, and an answer between them starts the count
// again; a refusal (nothing listens there) loses it at once, and so does
// the first silence of a run not yet held (an unplugged peer is shown
// lost as soon as memberlist's verdict is checked).
func TestLossyCheckTimeoutsDoNotLoseAHeldPeer(t *testing.T) {
	m := bobMeta(t, 100, nil)
	now := time.Unix(1000, 0)
	held := func() peerTable {
		tb := newPeerTable(selfID)
		tb.apply(joinEv(bob1, addr1, m), now)
		tb.apply(verifiedEv(bob1, addr1, 7481), now)
		tb.apply(leaveEv(bob1), now)
		tb.apply(checkedEv(bob1, addr1, true), now)
		return tb
	}
	tb := held()
	for round := range 3 {
		for i := range heldMisses - 1 {
			if r := tb.apply(checkedEv(bob1, addr1, false), now); r.event != nil || !tb.peers[bobID].Online() {
				t.Fatalf("round %d: silence %d lost the held peer: %+v", round, i+1, r)
			}
		}
		if r := tb.apply(checkedEv(bob1, addr1, true), now); r.event != nil || !tb.peers[bobID].Online() {
			t.Fatalf("an answer after silences: %+v", r)
		}
	}
	for range heldMisses - 1 {
		tb.apply(checkedEv(bob1, addr1, false), now)
	}
	if r := tb.apply(checkedEv(bob1, addr1, false), now); r.event == nil || r.event.Change != Lost || tb.live != 1 {
		t.Fatalf("%d silences in a row: %+v, want lost", heldMisses, r)
	}
	tb = held()
	if r := tb.apply(refusedEv(bob1, addr1), now); r.event == nil || r.event.Change != Lost {
		t.Fatalf("a held run's port refuses: %+v, want lost", r)
	}
	tb = newPeerTable(selfID)
	tb.apply(joinEv(bob1, addr1, m), now)
	tb.apply(verifiedEv(bob1, addr1, 7481), now)
	tb.apply(leaveEv(bob1), now)
	if r := tb.apply(checkedEv(bob1, addr1, false), now); r.event == nil || r.event.Change != Lost {
		t.Fatalf("the first check after gossip's dead finds nobody: %+v, want lost", r)
	}
}

// TestPeerTableHoldsAVerifiedRunGossipCallsDead: a forged dead message
// must not take offline a peer a handshake still reaches.
func TestPeerTableHoldsAVerifiedRunGossipCallsDead(t *testing.T) {
	m := bobMeta(t, 100, nil)
	now := time.Unix(1000, 0)
	start := func() peerTable {
		tb := newPeerTable(selfID)
		tb.apply(joinEv(bob1, addr1, m), now)
		tb.apply(verifiedEv(bob1, addr1, 7481), now)
		return tb
	}

	tb := start()
	if r := tb.apply(leaveEv(bob1), now); r.event != nil || r.check != bobID {
		t.Fatalf("gossip's dead for a verified run: %+v, want a check and no event", r)
	}
	if r := tb.apply(checkedEv(bob1, addr1, true), now); r.event != nil || r.held != bobID {
		t.Fatalf("the run answered: %+v, want it held and no event", r)
	}
	if !tb.peers[bobID].Online() || tb.live != 2 {
		t.Fatalf("held bob: %+v, live %d", tb.peers[bobID].Peer, tb.live)
	}
	if r := tb.apply(checkedEv(bob1, addr1, true), now); r.event != nil {
		t.Fatalf("held and still answering: %+v", r)
	}
	if r := tb.apply(joinEv(bob1, addr1, m), now); r.event != nil || r.unheld != bobID {
		t.Fatalf("memberlist takes the run back: %+v, want unheld and no event", r)
	}
	if r := tb.apply(leaveEv(bob1), now); r.check != bobID {
		t.Fatalf("a second dead is checked again: %+v", r)
	}

	// A held run whose port refuses is lost; one that says goodbye left.
	tb = start()
	tb.apply(leaveEv(bob1), now)
	tb.apply(checkedEv(bob1, addr1, true), now)
	if r := tb.apply(refusedEv(bob1, addr1), now); r.event == nil || r.event.Change != Lost || tb.live != 1 {
		t.Fatalf("held run stopped answering: %+v", r)
	}
	tb = start()
	tb.apply(leaveEv(bob1), now)
	if r := tb.apply(refusedEv(bob1, addr1), now); r.event == nil || r.event.Change != Lost {
		t.Fatalf("a crash: %+v, want lost", r)
	}
	tb = start()
	tb.apply(leaveEv(bob1), now)
	tb.apply(checkedEv(bob1, addr1, true), now)
	if r := tb.apply(intentEv(bob1), now); r.event == nil || r.event.Change != Departed {
		t.Fatalf("goodbye of a held run: %+v, want left", r)
	}

	// An unverified run is not asked: gossip is all there is to go by.
	tb = newPeerTable(selfID)
	tb.apply(joinEv(bob1, addr1, m), now)
	if r := tb.apply(leaveEv(bob1), now); r.event == nil || r.event.Change != Lost {
		t.Fatalf("unverified run's death: %+v", r)
	}
	// An answer from another address proves nothing about this run.
	tb = start()
	tb.apply(leaveEv(bob1), now)
	if r := tb.apply(checkedEv(bob1, addr2, true), now); r.event == nil || r.event.Change != Lost {
		t.Fatalf("an answer from elsewhere: %+v", r)
	}
}

func TestPeerTableTakesNewerMetaOnlyForTheLiveRun(t *testing.T) {
	now := time.Unix(1000, 0)
	m1 := bobMeta(t, 100, nil)
	m2 := bobMeta(t, 100, func(m *Meta) { m.Seq, m.State = 2, Away })
	metaEv := func(member string, meta []byte) memberEvent {
		ev := joinEv(member, addr1, meta)
		ev.kind = evMeta
		return ev
	}
	tb := newPeerTable(selfID)
	if r := tb.apply(metaEv(bob1, m1), now); r.event != nil || len(tb.peers) != 0 {
		t.Fatalf("evMeta of a run memberlist does not hold added %+v", r)
	}
	tb.apply(joinEv(bob1, addr1, m1), now)
	if r := tb.apply(metaEv(bob1, m2), now); r.event == nil || r.event.Peer.State != Away {
		t.Fatalf("newer metadata: %+v", r)
	}
	if r := tb.apply(updateEv(bob1, addr1, m1), now); r.event != nil || tb.peers[bobID].State != Away {
		t.Fatalf("older metadata after newer: %+v, state %v", r, tb.peers[bobID].State)
	}
	if r := tb.apply(metaEv(bob2, m2), now); r.event != nil {
		t.Fatalf("evMeta of another run: %+v", r)
	}
	tb.apply(memberEvent{kind: evForget, name: runOf(bobID, 0)}, now)
	if _, ok := tb.peers[bobID]; !ok {
		t.Fatal("a live peer was forgotten")
	}
	tb.apply(leaveEv(bob1), now)
	tb.apply(memberEvent{kind: evForget, name: runOf(bobID, 0)}, now)
	if _, ok := tb.peers[bobID]; ok {
		t.Fatal("an offline peer the gate forgot is still listed")
	}
}

// TestPeerTableAsksAVerifiedRunThatReturns: gossip saying a lost verified
// run is back (a healed split, or anyone replaying its last words) is
// checked by handshake before the peer is shown online and verified again.
func TestPeerTableAsksAVerifiedRunThatReturns(t *testing.T) {
	m := bobMeta(t, 100, nil)
	now := time.Unix(1000, 0)
	lost := func() peerTable {
		tb := newPeerTable(selfID)
		tb.apply(joinEv(bob1, addr1, m), now)
		tb.apply(verifiedEv(bob1, addr1, 7481), now)
		tb.apply(leaveEv(bob1), now)
		if r := tb.apply(refusedEv(bob1, addr1), now); r.event == nil || r.event.Change != Lost {
			t.Fatalf("setup: %+v", r)
		}
		return tb
	}
	tb := lost()
	if r := tb.apply(joinEv(bob1, addr1, m), now); r.event != nil || r.check != bobID {
		t.Fatalf("gossip says the run is back: %+v, want a check and no event", r)
	}
	if p := tb.peers[bobID]; p.Online() {
		t.Fatal("shown online before the handshake")
	}
	if r := tb.apply(checkedEv(bob1, addr1, false), now); r.event != nil || tb.peers[bobID].Online() {
		t.Fatalf("no answer: %+v", r)
	}
	if r := tb.apply(checkedEv(bob1, addr1, true), now); r.event == nil || r.event.Change != Returned || !r.event.Peer.Verified || !r.event.Peer.Online() {
		t.Fatalf("the run answered: %+v, want returned, verified", r)
	}

	// A replay that memberlist then finds dead changes nothing.
	tb = lost()
	tb.apply(joinEv(bob1, addr1, m), now)
	if r := tb.apply(leaveEv(bob1), now); r.event != nil || tb.peers[bobID].returning != nil || tb.live != 1 {
		t.Fatalf("replay found dead: %+v, live %d", r, tb.live)
	}
	if r := tb.apply(checkedEv(bob1, addr1, true), now); r.event != nil {
		t.Fatalf("a late answer after gossip took it back: %+v", r)
	}
}

func TestPeerTableKeepsFewOfflineStrangers(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newPeerTable(selfID)
	// bob was verified once; forty members of fresh keys never were.
	tb.apply(joinEv(bob1, addr1, bobMeta(t, 100, nil)), now)
	tb.apply(verifiedEv(bob1, addr1, 7481), now)
	tb.apply(leaveEv(bob1), now)
	tb.apply(refusedEv(bob1, addr1), now)
	var forgot int
	for i := range 40 {
		run := runOf(strings.Repeat(string(rune('C'+i%20)), IDLen-1)+string(rune('A'+i/20)), 1)
		now = now.Add(time.Second)
		tb.apply(joinEv(run, addr2, bobMeta(t, 100, nil)), now)
		forgot += len(tb.apply(leaveEv(run), now).forgot)
	}
	if len(tb.peers) != 1+maxStrangersOffline || forgot != 40-maxStrangersOffline {
		t.Fatalf("%d peers kept, %d forgotten, want bob and %d strangers", len(tb.peers), forgot, maxStrangersOffline)
	}
	if _, ok := tb.peers[bobID]; !ok {
		t.Fatal("the peer verified once was forgotten")
	}
}
