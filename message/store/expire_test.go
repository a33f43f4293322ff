package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"lanchat/message"
)

// Queued receipts expire by age and by count per recipient; what a
// person wrote, and what was already delivered, never does.
func TestExpireQueuedReceipts(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	var toBob []string
	for i := range 5 {
		env := alice.msgKind(t, bob, at(float64(i)), "receipt", `{"state":"read","ids":[]}`)
		if err := s.AddOutgoing(ctx, env); err != nil {
			t.Fatal(err)
		}
		toBob = append(toBob, env.ID)
	}
	for i := range 2 {
		if err := s.AddOutgoing(ctx, alice.msgKind(t, carol, at(float64(i)), "receipt", "{}")); err != nil {
			t.Fatal(err)
		}
	}
	text := alice.msg(t, bob, at(1.5), "a person wrote this")
	sent := alice.msgKind(t, bob, at(-1), "receipt", "{}")
	for _, env := range []*message.Envelope{text, sent} {
		if err := s.AddOutgoing(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetState(ctx, sent.ID, Delivered); err != nil {
		t.Fatal(err)
	}

	n, err := s.ExpireQueued(ctx, "receipt", time.Now().Add(-time.Hour), 2)
	if err != nil || n != 3 {
		t.Fatalf("expire by count: %d deleted, %v; want bob's 3 oldest", n, err)
	}
	out, err := s.Outbox(ctx, bob.id, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(out), []string{toBob[3], text.ID, toBob[4]}; !slices.Equal(sortedCopy(got), sortedCopy(want)) {
		t.Fatalf("bob's outbox %v, want %v", got, want)
	}
	if carols, _ := s.Outbox(ctx, carol.id, 100); len(carols) != 2 {
		t.Fatalf("carol's outbox has %d, want both of hers (under the cap)", len(carols))
	}

	n, err = s.ExpireQueued(ctx, "receipt", time.Now().Add(time.Hour), 100)
	if err != nil || n != 4 {
		t.Fatalf("expire by age: %d deleted, %v; want the 4 left", n, err)
	}
	out, _ = s.Outbox(ctx, bob.id, 100)
	if got := ids(out); len(got) != 1 || got[0] != text.ID {
		t.Fatalf("bob's outbox %v, want only the text", got)
	}
	if _, err := s.Get(ctx, alice.id, sent.ID); err != nil {
		t.Errorf("a delivered receipt was deleted: %v", err)
	}
	if _, err := s.ExpireQueued(ctx, message.KindText, time.Now(), 0); err == nil {
		t.Error("expiring text messages was allowed")
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
