package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// fakeClock is a wall clock the test moves.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (e *events) typing() []TypingEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []TypingEvent
	for _, ev := range e.evs {
		if v, ok := ev.(TypingEvent); ok {
			out = append(out, v)
		}
	}
	return out
}

// A typing indicator goes out at most once every TypingEvery per peer,
// not at all to a peer that is offline, and is never stored or queued.
func TestTypingIsSentSparinglyAndNeverQueued(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	f := newFixture(t, Config{Now: clk.now})
	bob, carol := newParty(t, "bob"), newParty(t, "carol")
	f.pres.set(bob.id, "bob", mesh.Available)
	f.pres.set(carol.id, "carol", mesh.Offline)
	ctx := context.Background()
	sent := 0
	for range 5 {
		_, ok, err := f.svc.Typing(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			sent++
		}
		clk.add(time.Second / 2)
	}
	if got := f.tr.texts(KindTyping); sent != 1 || len(got) != 1 || got[0] != "" {
		t.Fatalf("5 keystrokes in 2.5 s: %d indicators reported, transport got %q; want one, empty", sent, got)
	}
	clk.add(TypingEvery)
	if _, ok, _ := f.svc.Typing(ctx, "bob"); !ok {
		t.Error("no indicator after TypingEvery")
	}
	if _, ok, err := f.svc.Typing(ctx, "carol"); ok || err != nil {
		t.Errorf("typing to an offline peer: sent %v, %v; want dropped quietly", ok, err)
	}
	if got := f.tr.texts(KindTyping); len(got) != 2 {
		t.Errorf("transport got %d indicators, want 2", len(got))
	}
	out, err := f.st.Outbox(ctx, carol.id, 10)
	if err != nil || len(out) != 0 {
		t.Errorf("the offline peer's outbox: %d records, %v; want none", len(out), err)
	}
	if _, _, err := f.svc.Typing(ctx, "nobody"); err == nil {
		t.Error("typing to nobody: no error")
	}
}

// A received indicator is published, at most once a second per peer,
// and stored nowhere; one with a body is refused.
func TestTypingReceivedIsPublishedNotStored(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	f := newFixture(t, Config{Now: clk.now})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	ctx := context.Background()
	for range 3 {
		if errs := f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, bob, f.me.id, KindTyping, "")}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	if ev := f.ev.typing(); len(ev) != 1 || ev[0].From.ID != bob.id || ev[0].From.Name != "bob" {
		t.Fatalf("three indicators within a second: events %+v, want one from bob", ev)
	}
	clk.add(time.Second)
	f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, bob, f.me.id, KindTyping, "")})
	if ev := f.ev.typing(); len(ev) != 2 {
		t.Errorf("a second later: %d events, want 2", len(ev))
	}
	if errs := f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, bob, f.me.id, KindTyping, "hello")}); errs[0] == nil {
		t.Error("an indicator with a body was taken")
	}
	hist, err := f.st.History(ctx, store.Query{Peer: bob.id, Limit: 100, Kinds: []string{KindTyping, message.KindText}})
	if err != nil || len(hist) != 0 {
		t.Errorf("history with bob: %d records, %v; want none", len(hist), err)
	}
	if m := f.ev.messages(); len(m) != 0 {
		t.Errorf("message events %+v", m)
	}
}

// A room's indicator goes to its members online, at most once every
// TypingEvery, and only a member may send one; a receiver takes one only
// from a member of a room it is in, so a stranger's indicator (or one
// for a room the receiver left) is refused and publishes nothing.
func TestRoomTypingGoesToMembersAndOnlyFromMembers(t *testing.T) {
	l := newLAN()
	clk := &fakeClock{t: time.Now()} // ann's: each case below comes a second after the last
	ann := l.addWith(t, "ann", func(c *Config) { c.Now = clk.now })
	bob, cat := l.add(t, "bob"), l.add(t, "cat")
	l.met()
	ctx := context.Background()
	waitSame(t, GeneralRoom, []*lanNode{ann, bob, cat}, 3)
	for _, n := range []*lanNode{ann, bob} {
		if _, err := n.svc.JoinRoom(ctx, "#ops"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitForErr(t, 10*time.Second, func() error {
		for _, n := range []*lanNode{ann, bob} {
			if ids, joined, _ := n.svc.rooms.members(ctx, "#ops"); !joined || len(ids) != 2 {
				return fmt.Errorf("%s sees %d members of #ops", n.p.name, len(ids))
			}
		}
		return nil
	})

	sent, err := bob.svc.RoomTyping(ctx, "#ops")
	if err != nil || !sent {
		t.Fatalf("bob typing in #ops: sent %v, %v", sent, err)
	}
	if ev := ann.ev.typing(); len(ev) != 1 || ev[0].From.ID != bob.p.id || ev[0].Room != "#ops" {
		t.Fatalf("ann's typing events %+v, want one from bob in #ops", ev)
	}
	if ev := cat.ev.typing(); len(ev) != 0 {
		t.Errorf("cat, not in #ops, got %+v", ev)
	}
	if sent, err := bob.svc.RoomTyping(ctx, "#ops"); sent || err != nil {
		t.Errorf("again at once: sent %v, %v; want held back quietly", sent, err)
	}
	if _, err := cat.svc.RoomTyping(ctx, "#ops"); !errors.Is(err, ErrNotMember) {
		t.Errorf("cat typing in a room she is not in: %v, want ErrNotMember", err)
	}
	if _, err := bob.svc.RoomTyping(ctx, "#Bad"); !errors.Is(err, ErrInvalidRoom) {
		t.Errorf("a bad room name: %v", err)
	}

	mallory := newParty(t, "mallory")
	for _, c := range []struct {
		name string
		env  *message.Envelope
		want error
	}{
		{"a member of #general, not of #ops", sealFrom(t, cat.p, ann.p.id, KindTyping, "#ops"), ErrNotMember},
		{"a stranger in #general", sealFrom(t, mallory, ann.p.id, KindTyping, GeneralRoom), ErrNotMember},
		{"a room ann is not in", sealFrom(t, bob.p, ann.p.id, KindTyping, "#elsewhere"), ErrNotMember},
		{"a body that is no room", sealFrom(t, bob.p, ann.p.id, KindTyping, "hello"), errTypingBody},
	} {
		clk.add(time.Second)
		before := len(ann.ev.typing())
		errs := ann.svc.DeliverBatch(ctx, []*message.Envelope{c.env})
		if !errors.Is(errs[0], c.want) {
			t.Errorf("%s: %v, want %v", c.name, errs[0], c.want)
		}
		if got := len(ann.ev.typing()); got != before {
			t.Errorf("%s: published %d events", c.name, got-before)
		}
	}
	hist, err := ann.st.History(ctx, store.Query{Room: "#ops", Limit: 100, Kinds: []string{KindTyping, message.KindText}})
	if err != nil || len(hist) != 0 {
		t.Errorf("#ops history: %d records, %v; want none", len(hist), err)
	}
}
