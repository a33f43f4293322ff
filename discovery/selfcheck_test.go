package discovery

import (
	"context"
	"testing"
	"time"
)

// A running node hears its own advertisement when it asks for it; a name
// nobody advertises gets no answer; an id that is not one is an error.
func TestHeardSelf(t *testing.T) {
	if !inNetns(t, withMulticast()) {
		return
	}
	self, other := peer(t, 7101), peer(t, 7103)
	a := start(t, "a", fast(self))
	ctx := context.Background()
	waitFor(t, "a's advertisement heard back", func() bool {
		heard, err := HeardSelf(ctx, nil, self.ID, 200*time.Millisecond)
		return heard && err == nil
	})
	if heard, err := HeardSelf(ctx, nil, other.ID, 300*time.Millisecond); heard || err != nil {
		t.Fatalf("an id nobody advertises: heard %v, %v", heard, err)
	}
	if _, err := HeardSelf(ctx, nil, "not an id", time.Millisecond); err == nil {
		t.Fatal("a malformed id was asked for")
	}
	a.stop(t)
}
