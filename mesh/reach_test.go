package mesh

import (
	"testing"
	"time"
)

// TestReachInTable: the table's side of partition-aware presence. An
// unreachable mark names one run, is shown only while that run is alive,
// raises one event per change, and is gone once the peer is lost and back.
func TestReachInTable(t *testing.T) {
	tb := newPeerTable(selfID)
	now := time.Now()
	meta := bobMeta(t, 1, nil)
	tb.apply(joinEv(bob1, addr1, meta), now)
	reach := func(member string, ok bool, seen int) *Event {
		return tb.apply(memberEvent{kind: evReach, name: member, ok: ok, seen: seen}, now).event
	}
	shown := func() Peer {
		p := tb.peers[bobID].Peer
		tb.reachable(&p)
		return p
	}
	if p := shown(); !p.Reachable || p.SeenBy != 0 {
		t.Fatalf("a live peer starts %+v, want reachable", p)
	}
	if ev := reach(bob1, true, 2); ev != nil {
		t.Fatalf("reachable while reachable: event %v", ev.Change)
	}
	ev := reach(bob1, false, 2)
	if ev == nil || ev.Change != Unreachable || ev.Peer.Reachable || ev.Peer.SeenBy != 2 || ev.Peer.State != Available {
		t.Fatalf("cut: event %+v, want unreachable, seen by 2, still available", ev)
	}
	if ev := reach(bob1, false, 1); ev != nil {
		t.Fatalf("still unreachable: event %v", ev.Change)
	}
	if p := shown(); p.Reachable || p.SeenBy != 1 {
		t.Fatalf("listed as %+v, want unreachable, seen by 1", p)
	}
	if ev := reach(bob2, true, 0); ev != nil {
		t.Fatalf("news of another run changed the mark: %v", ev.Change)
	}
	ev = reach(bob1, true, 0)
	if ev == nil || ev.Change != Reachable || !ev.Peer.Reachable {
		t.Fatalf("healed: event %+v, want reachable", ev)
	}
	reach(bob1, false, 1)
	tb.apply(leaveEv(bob1), now) // lost: offline is not unreachable
	if p := shown(); p.Reachable || p.SeenBy != 0 {
		t.Fatalf("offline peer listed as %+v, want not reachable, seen by 0", p)
	}
	if ev := reach(bob1, false, 1); ev != nil {
		t.Fatalf("a dead run marked unreachable: %v", ev.Change)
	}
	tb.apply(joinEv(bob2, addr1, bobMeta(t, 2, nil)), now)
	if p := shown(); !p.Reachable {
		t.Fatalf("back online listed as %+v, want reachable", p)
	}
}
