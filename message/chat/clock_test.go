package chat

import (
	"context"
	"testing"
	"time"

	"lanchat/message"
)

// sealDirectAt writes a direct message as p, to "to", stamped t.
func sealDirectAt(tb testing.TB, p party, to string, t time.Time, body string) *message.Envelope {
	tb.Helper()
	env := &message.Envelope{Author: p.id, AuthorName: p.name, To: to, Time: message.Timestamp{Wall: t.UnixNano()}, Kind: message.KindText, Body: body}
	sealed, err := message.Seal(env, p.key)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := message.Open(sealed)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// A peer whose clock is an hour ahead neither drags ours nor pins its
// message to the end of the conversation: the message is kept and shown
// at its arrival, says what its author's clock claimed, and what is said
// after it comes after it. A message from a clock within the tolerance
// keeps its author's time.
func TestClockAheadIsKeptAtArrival(t *testing.T) {
	clock := message.NewClock(time.Now)
	f := newFixture(t, Config{Clock: clock})
	bob := newParty(t, "bob")
	ctx := context.Background()
	claimed := time.Now().Add(time.Hour)
	near := time.Now().Add(message.MaxClockAhead / 2)
	envs := []*message.Envelope{
		sealDirectAt(t, bob, f.me.id, claimed, "from the future"),
		sealDirectAt(t, bob, f.me.id, near, "slightly ahead"),
	}
	for _, env := range envs { // as message.Service does before delivering
		clock.Observe(env.Time)
	}
	errs := f.svc.DeliverBatch(ctx, envs)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("deliver: %v", errs)
	}
	evs := f.ev.messages()
	if len(evs) != 2 {
		t.Fatalf("%d message events, want 2", len(evs))
	}
	if !evs[0].ClaimedTime.Equal(claimed) || evs[0].Time.After(time.Now().Add(message.MaxClockAhead)) {
		t.Errorf("event of the far message: time %v claimed %v, want about now and %v", evs[0].Time, evs[0].ClaimedTime, claimed)
	}
	if !evs[1].ClaimedTime.IsZero() || !evs[1].Time.Equal(near) {
		t.Errorf("event of the near message: time %v claimed %v, want %v and none", evs[1].Time, evs[1].ClaimedTime, near)
	}
	// Our own next message is stamped near our wall clock, not an hour on.
	res, err := f.svc.Send(ctx, bob.id, "reply", false)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := f.svc.History(ctx, Query{Peer: bob.id, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range hist {
		texts = append(texts, e.Text)
	}
	// "slightly ahead" is at its author's time, which our clock followed;
	// the far one at its arrival on our clock, so after it; our reply
	// after both, and not an hour on.
	want := []string{"slightly ahead", "from the future", "reply"}
	if len(texts) != 3 || texts[0] != want[0] || texts[1] != want[1] || texts[2] != want[2] {
		t.Fatalf("history %q, want %q", texts, want)
	}
	if hist[2].ID != res.ID || hist[2].Time.After(time.Now().Add(message.MaxClockAhead)) {
		t.Errorf("our reply at %v: the far clock moved ours", hist[2].Time)
	}
	if !hist[1].ClaimedTime.Equal(claimed) || !hist[1].Arrived.IsZero() || !hist[0].ClaimedTime.IsZero() {
		t.Errorf("history: far message claimed %v arrived %v; near one claimed %v", hist[1].ClaimedTime, hist[1].Arrived, hist[0].ClaimedTime)
	}
}

// A message stamped long ago (an outbox emptied after a week, or a
// backdated claim) keeps its place by its author's time, and says when
// it really arrived.
func TestLateMessageSaysWhenItArrived(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	ctx := context.Background()
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if errs := f.svc.DeliverBatch(ctx, []*message.Envelope{
		sealDirectAt(t, bob, f.me.id, old, "from 2024"),
		sealDirectAt(t, bob, f.me.id, time.Now(), "today"),
	}); errs[0] != nil || errs[1] != nil {
		t.Fatalf("deliver: %v", errs)
	}
	hist, err := f.svc.History(ctx, Query{Peer: bob.id, Limit: 10})
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %+v, %v", hist, err)
	}
	if !hist[0].Time.Equal(old) || time.Since(hist[0].Arrived) > time.Minute || !hist[0].ClaimedTime.IsZero() {
		t.Errorf("old message: time %v arrived %v claimed %v; want %v, about now, none", hist[0].Time, hist[0].Arrived, hist[0].ClaimedTime, old)
	}
	if !hist[1].Arrived.IsZero() {
		t.Errorf("a message of now says it arrived late: %v", hist[1].Arrived)
	}
}
