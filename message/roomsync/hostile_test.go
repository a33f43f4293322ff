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
