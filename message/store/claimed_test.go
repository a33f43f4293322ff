package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"lanchat/message"
)

// A message stamped by a clock far ahead is stored at the time the
// receiver gives it, keeps the author's claim beside it, and is read back
// in that place after a restart; its neighbours are untouched.
func TestReceivedAtArrivalTime(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	s := openAt(t, path, testOptions(t))
	first := bob.msg(t, alice, at(10), "first")
	ahead := bob.msg(t, alice, at(5*3600), "from the future")
	last := bob.msg(t, alice, at(30), "last")
	if _, err := s.AddReceivedBatchAt(ctx, []*message.Envelope{first, ahead, last},
		[]message.Timestamp{{}, at(20), {}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddReceivedBatchAt(ctx, []*message.Envelope{first}, nil); err == nil {
		t.Error("one time for no message: no error")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, testOptions(t))
	recs, err := s.History(ctx, Query{Peer: bob.id, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := bodies(recs), []string{"first", "from the future", "last"}; !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
	if recs[1].Time != at(20) || !recs[1].ClaimedTime.Equal(at(5*3600).WallTime()) {
		t.Errorf("moved message: time %v claimed %v, want %v and %v", recs[1].Time, recs[1].ClaimedTime, at(20), at(5*3600).WallTime())
	}
	for _, i := range []int{0, 2} {
		if !recs[i].ClaimedTime.IsZero() {
			t.Errorf("%q has a claimed time %v", recs[i].Body, recs[i].ClaimedTime)
		}
	}
	// The envelope itself is unchanged: its signature and time still
	// are the author's.
	env, err := recs[1].Envelope()
	if err != nil || env.Time != at(5*3600) {
		t.Errorf("sealed envelope: %v, time %v", err, env.Time)
	}
}
