package roomsync

import (
	"fmt"
	"testing"
)

// Anyone may join a room, with as many fresh keys as they like: once a
// member held events of more authors than a PULL can name (4096), every
// pull of that room failed before it was sent, and the room was never
// caught up on again, by that member or from it.
func TestHostileKeyFloodDoesNotStopCatchUp(t *testing.T) {
	const room = "#general"
	n := newTestNet()
	server, client := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	// MaxVectorLen+50 strangers, one event each, held by both sides.
	for i := range MaxVectorLen + 50 {
		a := newIdentity(t)
		evs := [][]byte{sealEvent(t, a, room, 1, fmt.Sprintf("stranger %d", i))}
		server.src.put(room, a.id, evs)
		client.src.put(room, a.id, evs)
	}
	// A real member of whom the client misses the last three events.
	real := newIdentity(t)
	var evs [][]byte
	for s := uint64(1); s <= 5; s++ {
		evs = append(evs, sealEvent(t, real, room, s, fmt.Sprintf("real %d", s)))
	}
	server.src.put(room, real.id, evs)
	client.src.put(room, real.id, evs[:2])

	st, err := client.s.Pull(ctxT(t), server.id.id, room, client.src.vector(room), client.src)
	if err != nil {
		t.Fatalf("pull with a vector of %d authors: %v", len(client.src.vector(room)), err)
	}
	if got := client.src.vector(room)[real.id]; got != 5 {
		t.Fatalf("client holds %d of the real member's events, want 5 (stats %+v)", got, st)
	}
}

// A server whose heads announce more of one author than its store
// serves (a hostile author once got it there by reusing an event id)
// answered every PULL with REFUSE at that author, so no client caught up
// on the authors after it from that server either.
func TestOneUnservableAuthorDoesNotStopTheRestOfTheAnswer(t *testing.T) {
	const room = "#general"
	h := newHistory(t, room, []int{3, 4, 5})
	n := newTestNet()
	server, client := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	all := map[string]int{}
	for a, evs := range h.events {
		all[a] = len(evs)
	}
	h.give(server.src, all)
	// The first author in id order is announced with one event more
	// than held; the client holds what there is of it, and nothing of
	// the others.
	bad := h.authors[0].id
	for _, a := range h.authors {
		bad = min(bad, a.id)
	}
	server.src.mu.Lock()
	server.src.inflate = map[string]uint64{bad: 1}
	server.src.mu.Unlock()
	h.give(client.src, map[string]int{bad: all[bad]})
	if _, err := client.s.Pull(ctxT(t), server.id.id, room, client.src.vector(room), client.src); err != nil {
		t.Fatalf("pull: %v", err)
	}
	for _, a := range h.authors {
		if got, want := client.src.vector(room)[a.id], uint64(len(h.events[a.id])); a.id != bad && got != want {
			t.Fatalf("client holds %d of %s's events, want %d", got, a.id[:6], want)
		}
	}
}
