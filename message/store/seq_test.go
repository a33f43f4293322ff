package store

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"lanchat/message"
)

// Many messages with one wall time (a clock stuck behind a peer's, or a
// flood) take neighbouring seqs, then seqs past the largest, and history
// stays in order. Regression guard for a quadratic gap search.
func TestSeqRunsOfOneTimestamp(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var envs []*message.Envelope
	for i := range 300 {
		envs = append(envs, bob.msg(t, alice, message.Timestamp{Wall: at(0).Wall, Logical: uint32(299 - i)}, fmt.Sprint(i)))
	}
	later := bob.msg(t, alice, at(0.000_010), "ten microseconds later")
	earlier := bob.msg(t, alice, at(-1), "a second earlier")
	envs = append(envs, later, earlier)
	if _, err := s.AddReceivedBatch(ctx, envs); err != nil {
		t.Fatal(err)
	}
	rows, err := s.rdb.Query("SELECT seq, wall FROM messages")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, wall int64
		rows.Scan(&seq, &wall)
		if seq < seqFloor(wall) {
			t.Errorf("seq %d below its floor %d", seq, seqFloor(wall))
		}
	}
	want := append([]*message.Envelope(nil), envs...)
	slices.SortFunc(want, message.Compare)
	for _, limit := range []int{0, 1, 2, 50, 301} {
		got, err := s.History(ctx, Query{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		w := idsOf(want)
		if limit > 0 {
			w = w[max(0, len(w)-limit):]
		}
		if !slices.Equal(ids(got), w) {
			t.Errorf("limit %d: got %v\nwant %v", limit, bodies(got), w)
		}
	}
}
