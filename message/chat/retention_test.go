package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// agedLAN is a fake LAN whose nodes share one wall clock that a test can
// move forward, so that a room's events age past its retention without
// waiting hours.
type agedLAN struct {
	*lan
	offset atomic.Int64 // added to time.Now, ns
}

func (a *agedLAN) now() time.Time { return time.Now().Add(time.Duration(a.offset.Load())) }

// age moves every node's clock forward by d.
func (a *agedLAN) age(d time.Duration) { a.offset.Add(int64(d)) }

func (a *agedLAN) add(t *testing.T, name string) *lanNode {
	return a.addWith(t, name, func(c *Config) {
		c.Clock = message.NewClock(a.now)
		c.Now = a.now
		c.PruneEvery = 50 * time.Millisecond
	})
}

// shown is what n's history of room shows, as comparable lines.
func (n *lanNode) shown(t *testing.T, room string) []string {
	t.Helper()
	es, err := n.svc.History(context.Background(), Query{Peer: room, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.From.ID[:6] + " " + e.Kind + " " + e.Text
	}
	return out
}

// Events older than a room's retention are pruned on every member, but
// for one witness per author; a late joiner gets only what is retained,
// skipping over the pruned prefixes, and then shows the room exactly as
// the others do.
func TestRoomRetentionPrunesAndALateJoinerConverges(t *testing.T) {
	a := &agedLAN{lan: newLAN()}
	ctx := context.Background()
	var members []*lanNode
	for _, name := range []string{"ann", "ben", "cat"} {
		n := a.add(t, name)
		inGeneral(t, n)
		if _, err := n.svc.JoinRoom(ctx, "#ops"); err != nil {
			t.Fatal(err)
		}
		members = append(members, n)
	}
	a.met()
	for _, n := range members {
		for i := range 3 {
			if _, err := n.svc.SendRoom(ctx, "#ops", fmt.Sprintf("old %s %d", n.p.name, i), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitSame(t, "#ops", members, 3+9)
	if _, err := members[0].svc.SetRetention(ctx, "#ops", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForErr(t, 10*time.Second, func() error {
		for _, n := range members {
			if info, err := n.svc.RoomInfo(ctx, "#ops"); err != nil || info.Retention != 2*time.Hour {
				return fmt.Errorf("%s: #ops keeps %v (%v)", n.p.name, info.Retention, err)
			}
		}
		return nil
	})
	// The setting is shown, as a join is.
	if got := members[1].shown(t, "#ops"); !slices.Contains(got, members[0].p.id[:6]+" "+message.KindRetention+" 7200") {
		t.Fatalf("ben does not show ann's setting: %q", got)
	}

	a.age(3 * time.Hour)
	var retained []string
	for _, n := range members {
		for i := range 2 {
			text := fmt.Sprintf("new %s %d", n.p.name, i)
			if _, err := n.svc.SendRoom(ctx, "#ops", text, true); err != nil {
				t.Fatal(err)
			}
			retained = append(retained, n.p.id[:6]+" text "+text)
		}
	}
	// Pruned everywhere: of the 13 old events (3 joins, 9 messages, the
	// setting) one witness per author is left, hidden.
	testutil.WaitForErr(t, 10*time.Second, func() error {
		for _, n := range members {
			if got := n.roomLog(t, "#ops"); len(got) != 3+6 {
				return fmt.Errorf("%s holds %d events of #ops, want 3 witnesses and 6 new", n.p.name, len(got))
			}
		}
		return nil
	})
	for _, n := range members {
		got := n.shown(t, "#ops")
		if !sameSet(got, retained) {
			t.Fatalf("%s shows %q, want the new messages %q", n.p.name, got, retained)
		}
		if info, _ := n.svc.RoomInfo(ctx, "#ops"); info.Unread != 4 {
			t.Fatalf("%s: %d unread in #ops, want 4 (the others' new messages; no witness)", n.p.name, info.Unread)
		}
	}

	// dan joins late and pulls from the pruned members.
	dan := a.add(t, "dan")
	inGeneral(t, dan)
	a.met()
	if _, err := dan.svc.JoinRoom(ctx, "#ops"); err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(members), dan)
	testutil.WaitForErr(t, 20*time.Second, func() error {
		first := all[0].shown(t, "#ops")
		if len(first) != 7 {
			return fmt.Errorf("ann shows %d of #ops, want 6 messages and dan's join", len(first))
		}
		for _, n := range all[1:] {
			if got := n.shown(t, "#ops"); !slices.Equal(got, first) {
				return fmt.Errorf("%s shows %q, ann %q", n.p.name, got, first)
			}
		}
		return nil
	})
	if got := withoutKind(dan.shown(t, "#ops"), message.KindJoin); !sameSet(got, retained) {
		t.Fatalf("dan shows %q, want the new messages %q", got, retained)
	}
	// What dan holds, once pruned itself: a witness of each author, the
	// retained messages and its join. (An old join may have come in the
	// members' index meanwhile; pruning takes it.)
	testutil.WaitForErr(t, 5*time.Second, func() error {
		if got := dan.roomLog(t, "#ops"); len(got) != 3+6+1 {
			return fmt.Errorf("dan holds %d events of #ops, want 3 witnesses, 6 messages and its join: %q", len(got), got)
		}
		return nil
	})
	ms, err := dan.svc.RoomMembers(ctx, "#ops")
	if err != nil || len(ms) != 4 {
		t.Fatalf("dan's members of #ops: %v, %v", ms, err)
	}
	if info, _ := dan.svc.RoomInfo(ctx, "#ops"); info.Retention != 2*time.Hour {
		t.Fatalf("dan: #ops keeps %v, want 2h", info.Retention)
	}
	// dan now serves the room too: a message after its catch-up reaches
	// it, in sequence.
	if _, err := members[2].svc.SendRoom(ctx, "#ops", "welcome dan", true); err != nil {
		t.Fatal(err)
	}
	waitSame(t, "#ops", all, 0)
	if got := dan.shown(t, "#ops"); got[len(got)-1] != members[2].p.id[:6]+" text welcome dan" {
		t.Fatalf("dan's last: %q", got)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func withoutKind(lines []string, kind string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, " "+kind+" ") && !strings.HasSuffix(l, " "+kind) {
			out = append(out, l)
		}
	}
	return out
}

// syncBuffer is a log a test reads while the service writes it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sealAt seals an event of p in room with the time ts.
func sealAt(t *testing.T, p party, room string, seq uint64, ts time.Time, kind, body string) *message.Envelope {
	t.Helper()
	env := &message.Envelope{Author: p.id, AuthorName: p.name, Conversation: room, Seq: seq,
		Time: message.Timestamp{Wall: ts.UnixNano()}, Kind: kind, Body: body}
	sealed, err := message.Seal(env, p.key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := message.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHostileRoomSkipsAndSettings: what a member, relaying or authoring,
// may not make a node do with a room's retention.
func TestHostileRoomSkipsAndSettings(t *testing.T) {
	a := &agedLAN{lan: newLAN()}
	logs := &syncBuffer{}
	ann := a.addWith(t, "ann", func(c *Config) {
		c.Clock = message.NewClock(a.now)
		c.Now = a.now
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	inGeneral(t, ann)
	ctx := context.Background()
	if _, err := ann.svc.SetRetention(ctx, GeneralRoom, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	relay, mallory := newParty(t, "relay"), newParty(t, "mallory")
	now := a.now()

	t.Run("skip over retained events", func(t *testing.T) {
		// mallory's seq 5 is an hour old: within the 2 h retention, so
		// seq 1..4 are too, and a relay offering 5 first hides them.
		env := sealAt(t, mallory, GeneralRoom, 5, now.Add(-time.Hour), message.KindText, "you never saw 1..4")
		errs := ann.svc.rooms.accept(ctx, relay.id, []*message.Envelope{env})
		if !errors.Is(errs[0], errGap) {
			t.Fatalf("skip accepted: %v", errs[0])
		}
		if h, _ := ann.svc.Heads(ctx, GeneralRoom); h[mallory.id] != 0 {
			t.Fatalf("mallory's head moved to %d", h[mallory.id])
		}
		if !strings.Contains(logs.String(), "refusing a skip") || !strings.Contains(logs.String(), "from="+mesh.ShortID(relay.id)) {
			t.Fatalf("the refusal is not logged with the relay: %s", logs.String())
		}
	})
	t.Run("skip over pruned events", func(t *testing.T) {
		// The same author's seq 5 three hours old is a witness: taken.
		old := sealAt(t, mallory, GeneralRoom, 5, now.Add(-3*time.Hour), message.KindText, "witness")
		next := sealAt(t, mallory, GeneralRoom, 6, now.Add(-time.Minute), message.KindText, "retained")
		for i, err := range ann.svc.rooms.accept(ctx, relay.id, []*message.Envelope{old, next}) {
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		if h, _ := ann.svc.Heads(ctx, GeneralRoom); h[mallory.id] != 6 {
			t.Fatalf("mallory's head %d, want 6", h[mallory.id])
		}
		// Nor does a search over every conversation find the witness.
		if es, err := ann.svc.History(ctx, Query{Search: "witness"}); err != nil || len(es) != 0 {
			t.Fatalf("a search finds %d hidden events (%v)", len(es), err)
		}
		if es, err := ann.svc.History(ctx, Query{Search: "retained"}); err != nil || len(es) != 1 {
			t.Fatalf("a search finds %d retained events, want 1 (%v)", len(es), err)
		}
		got := ann.shown(t, GeneralRoom)
		if slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, "witness") }) || !slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, "retained") }) {
			t.Fatalf("history shows %q: want the retained event and not the witness", got)
		}
		// What came before the witness, offered now, is ignored.
		before := sealAt(t, mallory, GeneralRoom, 2, now.Add(-4*time.Hour), message.KindText, "older")
		if errs := ann.svc.rooms.accept(ctx, relay.id, []*message.Envelope{before}); errs[0] != nil {
			t.Fatalf("an event below the witness: %v, want ignored", errs[0])
		}
	})
	t.Run("time not after the previous event", func(t *testing.T) {
		for _, ts := range []time.Time{now.Add(-time.Minute), now.Add(-2 * time.Minute)} {
			env := sealAt(t, mallory, GeneralRoom, 7, ts, message.KindText, "back in time")
			if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{env}); !errors.Is(errs[0], errNotMonotonic) {
				t.Fatalf("seq 7 at %v after seq 6 at %v: %v", ts, now.Add(-time.Minute), errs[0])
			}
		}
		if h, _ := ann.svc.Heads(ctx, GeneralRoom); h[mallory.id] != 6 {
			t.Fatalf("mallory's head %d, want 6", h[mallory.id])
		}
		// A skip must be later than the event held too.
		env := sealAt(t, mallory, GeneralRoom, 9, now.Add(-5*time.Hour), message.KindText, "older witness")
		if errs := ann.svc.rooms.accept(ctx, relay.id, []*message.Envelope{env}); !errors.Is(errs[0], errGap) {
			t.Fatalf("a skip to an event older than the one held: %v", errs[0])
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		for _, d := range []time.Duration{time.Minute, DefaultMinRetention - time.Second, MaxRetention + time.Hour, 90*time.Minute + time.Millisecond, -time.Hour} {
			if _, err := ann.svc.SetRetention(ctx, GeneralRoom, d); !errors.Is(err, ErrInvalidRetention) {
				t.Errorf("SetRetention(%v): %v, want ErrInvalidRetention", d, err)
			}
		}
		seq := uint64(7)
		for _, body := range []string{"60", "3599", "abc", "-3600", "03600", "", "99999999999999999999999", "3600.5"} {
			env := sealAt(t, mallory, GeneralRoom, seq, now, message.KindRetention, body)
			if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{env}); !errors.Is(errs[0], ErrInvalidRetention) {
				t.Errorf("retention body %q: %v, want ErrInvalidRetention", body, errs[0])
			}
		}
		ahead := sealAt(t, mallory, GeneralRoom, seq, now.Add(2*message.MaxClockAhead), message.KindRetention, "3600")
		if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{ahead}); !errors.Is(errs[0], ErrInvalidRetention) {
			t.Errorf("a setting stamped hours ahead: %v", errs[0])
		}
		// Straight from an author nobody knows in the room, a setting
		// ahead of its log is refused; a member relaying it vouches.
		stranger := newParty(t, "stranger")
		early := sealAt(t, stranger, GeneralRoom, 4, now, message.KindRetention, "3600")
		if errs := ann.svc.rooms.accept(ctx, stranger.id, []*message.Envelope{early}); !errors.Is(errs[0], ErrNotMember) {
			t.Errorf("a stranger's setting: %v, want ErrNotMember", errs[0])
		}
		if d, _ := ann.svc.Retention(ctx, GeneralRoom); d != 2*time.Hour {
			t.Fatalf("#general keeps %v after refused settings, want 2h", d)
		}
		if h, _ := ann.svc.Heads(ctx, GeneralRoom); h[mallory.id] != 6 {
			t.Fatalf("mallory's head %d, want 6", h[mallory.id])
		}
	})
}

// The latest setting in the room's order is in force, whatever order
// the settings arrive in.
func TestRoomRetentionLatestWinsOnEveryMember(t *testing.T) {
	a := &agedLAN{lan: newLAN()}
	x, y := a.add(t, "x"), a.add(t, "y")
	inGeneral(t, x)
	inGeneral(t, y)
	ctx := context.Background()
	p, q := newParty(t, "p"), newParty(t, "q")
	now := a.now()
	pj := sealAt(t, p, GeneralRoom, 1, now.Add(-time.Minute), message.KindJoin, "")
	qj := sealAt(t, q, GeneralRoom, 1, now.Add(-time.Minute), message.KindJoin, "")
	ps := sealAt(t, p, GeneralRoom, 2, now.Add(-20*time.Second), message.KindRetention, "86400")
	qs := sealAt(t, q, GeneralRoom, 2, now.Add(-10*time.Second), message.KindRetention, "7200") // later: in force
	deliver := func(n *lanNode, batches ...[]*message.Envelope) {
		for _, b := range batches {
			for i, err := range n.svc.rooms.accept(ctx, b[0].Author, b) {
				if err != nil {
					t.Fatalf("%s: event %d: %v", n.p.name, i, err)
				}
			}
		}
	}
	deliver(x, []*message.Envelope{pj, ps}, []*message.Envelope{qj, qs})
	deliver(y, []*message.Envelope{qj, qs}, []*message.Envelope{pj, ps})
	for _, n := range []*lanNode{x, y} {
		if d, err := n.svc.Retention(ctx, GeneralRoom); err != nil || d != 2*time.Hour {
			t.Fatalf("%s: #general keeps %v (%v), want q's later 2h", n.p.name, d, err)
		}
	}
	// A member's own later setting wins in turn, on both.
	if _, err := x.svc.SetRetention(ctx, GeneralRoom, 0); err != nil {
		t.Fatal(err)
	}
	a.met()
	testutil.WaitForErr(t, 10*time.Second, func() error {
		for _, n := range []*lanNode{x, y} {
			if d, _ := n.svc.Retention(ctx, GeneralRoom); d != 0 {
				return fmt.Errorf("%s: #general keeps %v, want for ever", n.p.name, d)
			}
		}
		return nil
	})
}

// After a retention is lengthened, the cutoff stays where the shorter one
// had brought it until the longer one passes it: what members pruned
// under the shorter one can still be skipped by a late joiner.
func TestRetentionCutoffIsAHighWaterMark(t *testing.T) {
	p := newParty(t, "p")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set := func(at time.Duration, secs uint64) store.RoomRetention {
		return store.RoomRetention{Env: sealAt(t, p, "#r", 1, t0.Add(at), message.KindRetention, fmt.Sprint(secs)), Seconds: secs}
	}
	day := uint64(24 * 3600)
	rs := []store.RoomRetention{set(0, day), set(10*24*time.Hour, 30*day)}
	for _, c := range []struct {
		now  time.Duration
		want time.Duration // cutoff after t0
	}{
		{5 * 24 * time.Hour, 4 * 24 * time.Hour},
		{10 * 24 * time.Hour, 9 * 24 * time.Hour},  // the 1-day setting's reach when replaced
		{20 * 24 * time.Hour, 9 * 24 * time.Hour},  // the 30 days have not passed it
		{45 * 24 * time.Hour, 15 * 24 * time.Hour}, // now they have
	} {
		if got := cutoffOf(rs, t0.Add(c.now)); got != t0.Add(c.want).UnixNano() {
			t.Errorf("at t0+%v: cutoff t0+%v, want t0+%v", c.now, time.Duration(got-t0.UnixNano()), c.want)
		}
	}
	if got := cutoffOf(append(rs, set(50*24*time.Hour, 0)), t0.Add(60*24*time.Hour)); got != t0.Add(20*24*time.Hour).UnixNano() {
		t.Errorf("after 'for ever': cutoff t0+%v, want t0+20d (what was pruned stays pruned)", time.Duration(got-t0.UnixNano()))
	}
}

// Two members holding random prefixes of one room's history, each then
// pruned by the room's retention, end up showing the same: every
// retained event either held, and nothing older, after pulling from
// each other, whatever the prefixes (the property test of
// TestRoomPullsConvergeToTheUnion, with pruned prefixes).
func TestRoomPullsConvergeAcrossPrunedPrefixes(t *testing.T) {
	const oldN, newN = 12, 6
	now := time.Now()
	authors := make([]party, 4)
	var hist [][]*message.Envelope // by author: seq 1 a join, then texts; the first oldN are past the retention
	for i := range authors {
		authors[i] = newParty(t, fmt.Sprintf("a%d", i))
		var evs []*message.Envelope
		for s := uint64(1); s <= oldN+newN; s++ {
			kind, body := message.KindText, fmt.Sprintf("a%d %d", i, s)
			if s == 1 {
				kind, body = message.KindJoin, ""
			}
			ts := now.Add(-3*time.Hour + time.Duration(s)*time.Millisecond)
			if s > oldN {
				ts = now.Add(-time.Minute + time.Duration(s)*time.Millisecond)
			}
			evs = append(evs, sealAt(t, authors[i], "#r", s, ts, kind, body))
		}
		hist = append(hist, evs)
	}
	setter := newParty(t, "setter")
	settings := []*message.Envelope{
		sealAt(t, setter, "#r", 1, now.Add(-40*time.Minute), message.KindJoin, ""),
		sealAt(t, setter, "#r", 2, now.Add(-30*time.Minute), message.KindRetention, "7200"),
	}
	for seed := range 8 {
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		a := &agedLAN{lan: newLAN()}
		x, y := a.addWith(t, "x", func(c *Config) { c.NoGeneral = true }), a.addWith(t, "y", func(c *Config) { c.NoGeneral = true })
		ctx := context.Background()
		want := 2 + 2 // x's and y's joins, the setter's join and setting
		for _, n := range []*lanNode{x, y} {
			if _, err := n.svc.JoinRoom(ctx, "#r"); err != nil {
				t.Fatal(err)
			}
			for i, err := range n.svc.rooms.accept(ctx, setter.id, settings) {
				if err != nil {
					t.Fatalf("setting %d: %v", i, err)
				}
			}
		}
		for _, evs := range hist {
			most := 0
			for _, n := range []*lanNode{x, y} {
				k := rng.IntN(len(evs) + 1)
				most = max(most, k)
				if k == 0 {
					continue
				}
				for i, err := range n.svc.rooms.accept(ctx, evs[0].Author, evs[:k]) {
					if err != nil {
						t.Fatalf("seed %d: prefix event %d: %v", seed, i, err)
					}
				}
			}
			want += max(0, most-oldN)
		}
		for _, n := range []*lanNode{x, y} {
			if err := n.svc.rooms.prune(ctx, "#r"); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.svc.rooms.pull(ctx, y.p.id, "#r"); err != nil {
			t.Fatalf("seed %d: x pulls: %v", seed, err)
		}
		if err := y.svc.rooms.pull(ctx, x.p.id, "#r"); err != nil {
			t.Fatalf("seed %d: y pulls: %v", seed, err)
		}
		gx, gy := x.shown(t, "#r"), y.shown(t, "#r")
		if len(gx) != want || !slices.Equal(gx, gy) {
			t.Fatalf("seed %d: x shows %d, y %d, want %d each and equal:\n%q\n%q", seed, len(gx), len(gy), want, gx, gy)
		}
		hx, _ := x.svc.Heads(ctx, "#r")
		hy, _ := y.svc.Heads(ctx, "#r")
		if fmt.Sprint(hx) != fmt.Sprint(hy) {
			t.Fatalf("seed %d: heads differ: %v and %v", seed, hx, hy)
		}
		x.stop()
		y.stop()
	}
}

// A member whose clock is minutes behind still takes the skips over what
// the others pruned: they delete only what is pruneSlack older than their
// cutoff, so the witness they hand over is past the late clock's cutoff
// too. (Without the slack, ann's witness would be her message from 2 h
// 5 min ago, which dan's clock, 8 min behind, puts inside the retention.)
func TestRoomRetentionToleratesAClockBehind(t *testing.T) {
	a := &agedLAN{lan: newLAN()}
	ctx := context.Background()
	ann := a.add(t, "ann")
	inGeneral(t, ann)
	if _, err := ann.svc.JoinRoom(ctx, "#ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := ann.svc.SetRetention(ctx, "#ops", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := ann.svc.SendRoom(ctx, "#ops", "long gone", false); err != nil {
		t.Fatal(err)
	}
	a.age(55 * time.Minute)
	if _, err := ann.svc.SendRoom(ctx, "#ops", "near the edge", false); err != nil {
		t.Fatal(err)
	}
	a.age(2*time.Hour + 5*time.Minute)
	if _, err := ann.svc.SendRoom(ctx, "#ops", "fresh", false); err != nil {
		t.Fatal(err)
	}
	if err := ann.svc.rooms.prune(ctx, "#ops"); err != nil {
		t.Fatal(err)
	}
	behind := func() time.Time { return a.now().Add(-8 * time.Minute) }
	dan := a.addWith(t, "dan", func(c *Config) {
		c.Clock = message.NewClock(behind)
		c.Now = behind
	})
	inGeneral(t, dan)
	a.met()
	if _, err := dan.svc.JoinRoom(ctx, "#ops"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForErr(t, 10*time.Second, func() error {
		if got := dan.shown(t, "#ops"); !slices.Contains(got, ann.p.id[:6]+" text fresh") {
			return fmt.Errorf("dan shows %q", got)
		}
		return nil
	})
}
