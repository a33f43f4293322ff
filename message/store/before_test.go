package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"lanchat/message"
)

// Paging backwards with Before, a page at a time, reads a conversation
// whole, in order, once — messages that share a wall time (told apart by
// the logical clock and the author) included.
func TestHistoryBeforePagesBackwards(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for i := range 37 {
		ts := at(float64(i / 3)) // three messages per wall time
		ts.Logical = uint32(i % 3)
		var err error
		if i%2 == 0 {
			_, err = s.AddReceived(ctx, bob.msg(t, alice, ts, fmt.Sprint("m", i)))
		} else {
			err = s.AddOutgoing(ctx, alice.msg(t, bob, ts, fmt.Sprint("m", i)))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Another conversation, interleaved in time, must not leak in.
	if _, err := s.AddReceived(ctx, carol.msg(t, alice, at(4), "carol")); err != nil {
		t.Fatal(err)
	}
	all, err := s.History(ctx, Query{Peer: bob.id})
	if err != nil || len(all) != 37 {
		t.Fatalf("whole history: %d, %v", len(all), err)
	}
	var paged []Record
	before := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, err := s.History(ctx, Query{Peer: bob.id, Limit: 5, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(slices.Clone(page), paged...)
		before = page[0].ID
	}
	if !slices.Equal(bodies(paged), bodies(all)) {
		t.Errorf("paged %q\nwhole %q", bodies(paged), bodies(all))
	}
}

func TestHistoryBeforeRefused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	env := carol.msg(t, alice, at(1), "hi")
	if _, err := s.AddReceived(ctx, env); err != nil {
		t.Fatal(err)
	}
	// carol's message is not in bob's conversation.
	if _, err := s.History(ctx, Query{Peer: bob.id, Before: env.ID}); !errors.Is(err, ErrNotFound) {
		t.Errorf("before an id of another conversation: %v, want ErrNotFound", err)
	}
	if _, err := s.History(ctx, Query{Before: env.ID}); err == nil {
		t.Error("before without a conversation: no error")
	}
	if _, err := s.History(ctx, Query{Peer: carol.id, Search: "hi", Before: env.ID}); err == nil {
		t.Error("before with a search: no error")
	}
}

// BenchmarkConversation100k reads pages of one direct conversation of
// 100,000 messages, as the terminal UI does: the newest page on opening,
// then the pages before it while scrolling back (a deep one, halfway).
func BenchmarkConversation100k(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	const n, page = 100_000, 200
	var mid string
	for i := 0; i < n; i += 2000 {
		var in []*message.Envelope
		for j := i; j < i+2000; j++ {
			e := bob.msg(b, alice, at(float64(j)), fmt.Sprint("message ", j, " of the long conversation"))
			if j == n/2 {
				mid = e.ID
			}
			in = append(in, e)
		}
		if _, err := s.add(ctx, in, nil, false); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"newest-page", Query{Peer: bob.id, Limit: page}},
		{"page-before-halfway", Query{Peer: bob.id, Limit: page, Before: mid}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.History(ctx, c.q)
				if err != nil || len(got) != page {
					b.Fatalf("%d, %v", len(got), err)
				}
			}
		})
	}
}
