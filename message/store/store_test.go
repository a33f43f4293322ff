package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"lanchat/message"
)

func TestAddReceivedIsIdempotent(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	e := bob.msg(t, alice, at(1), "hello")
	for i, want := range []bool{true, false, false} {
		ins, err := s.AddReceived(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if ins != want {
			t.Errorf("add #%d: inserted = %v, want %v", i+1, ins, want)
		}
	}
	// The same envelope as received again over the wire: equal bytes, new value.
	again, err := message.Open(e.Sealed())
	if err != nil {
		t.Fatal(err)
	}
	if ins, err := s.AddReceived(ctx, again); err != nil || ins {
		t.Errorf("re-opened envelope: inserted = %v, %v; want false, nil", ins, err)
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	r, err := s.Get(ctx, bob.id, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Delivered || r.Outgoing || r.Peer != bob.id || r.To != alice.id || r.Body != "hello" ||
		r.AuthorName != "bob" || r.Time != e.Time || string(r.Sealed) != string(e.Sealed()) {
		t.Errorf("stored record = %+v", r)
	}
	if env, err := r.Envelope(); err != nil || env.ID != e.ID {
		t.Errorf("Envelope() = %v, %v", env, err)
	}
}

func TestAddReceivedConcurrentDuplicates(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	envs := []*message.Envelope{bob.msg(t, alice, at(1), "one"), bob.msg(t, alice, at(2), "two")}
	var (
		mu       sync.Mutex
		inserted = map[string]int{}
		wg       sync.WaitGroup
	)
	for i := range 40 {
		wg.Go(func() {
			e := envs[i%2]
			ins, err := s.AddReceived(ctx, e)
			if err != nil {
				t.Error(err)
				return
			}
			if ins {
				mu.Lock()
				inserted[e.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, e := range envs {
		if inserted[e.ID] != 1 {
			t.Errorf("%s inserted %d times, want once", e.Body, inserted[e.ID])
		}
	}
	if n, _ := s.Count(ctx); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}

// The same id from two authors is two messages: nobody can suppress
// another author's message by reusing its id.
func TestSameIDOtherAuthor(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	e1 := bob.msg(t, alice, at(1), "from bob")
	e2 := &message.Envelope{ID: e1.ID, To: alice.id, Time: at(2), Kind: message.KindText, Body: "from carol"}
	if _, err := message.Seal(e2, carol.key); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*message.Envelope{e1, e2} {
		if ins, err := s.AddReceived(ctx, e); err != nil || !ins {
			t.Fatalf("AddReceived(%s) = %v, %v", e.Body, ins, err)
		}
	}
	if n, _ := s.Count(ctx); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}

func TestAddRefusesUnsealed(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		env  *message.Envelope
	}{
		{"nil", nil},
		{"not sealed", &message.Envelope{ID: message.NewID(), Author: bob.id, To: alice.id, Kind: "text", Body: "x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.AddReceived(ctx, c.env); err == nil {
				t.Error("AddReceived succeeded")
			}
			if err := s.AddOutgoing(ctx, c.env); err == nil {
				t.Error("AddOutgoing succeeded")
			}
		})
	}
}

// clockAt is a message.Clock whose wall clock is off by skew.
func clockAt(base time.Time, skew time.Duration, step *time.Duration) *message.Clock {
	return message.NewClock(func() time.Time { return base.Add(skew + *step) })
}

// Conversations follow the hybrid logical clocks, also when the authors'
// wall clocks disagree: a reply comes after what it answers, and each
// author's messages keep their order.
func TestOrderingWithDisagreeingClocks(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var elapsed time.Duration
	people := []person{alice, bob, carol}
	clocks := []*message.Clock{
		clockAt(base, 0, &elapsed),
		clockAt(base, -40*time.Second, &elapsed), // bob's clock is behind
		clockAt(base, 25*time.Second, &elapsed),  // carol's is ahead
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var written []*message.Envelope // in causal order: each was written after reading all before it
	for i := range 60 {
		elapsed += time.Duration(rng.IntN(3000)) * time.Millisecond
		w := rng.IntN(3)
		if len(written) > 0 {
			clocks[w].Observe(written[len(written)-1].Time) // read the previous message first
		}
		to := people[(w+1)%3]
		e := people[w].msg(t, to, clocks[w].Now(), fmt.Sprintf("m%02d", i))
		written = append(written, e)
	}
	shuffled := slices.Clone(written)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, e := range shuffled {
		var err error
		if e.Author == alice.id {
			err = s.AddOutgoing(ctx, e)
		} else {
			_, err = s.AddReceived(ctx, e)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.History(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(written)
	slices.SortFunc(want, message.Compare)
	if !slices.Equal(ids(got), idsOf(want)) {
		t.Errorf("history order\n got %v\nwant %v", bodies(got), bodiesOf(want))
	}
	// Causal order: each message was written after the one before it was read.
	if !slices.Equal(bodies(got), bodiesOf(written)) {
		t.Errorf("history is not in causal order:\n got %v\nwant %v", bodies(got), bodiesOf(written))
	}
	for _, p := range people {
		var mine []string
		for _, r := range got {
			if r.Author == p.id {
				mine = append(mine, r.Body)
			}
		}
		if !slices.IsSorted(mine) {
			t.Errorf("%s's messages out of order: %v", p.name, mine)
		}
	}
}

func idsOf(envs []*message.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

func bodiesOf(envs []*message.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.Body
	}
	return out
}

// History must return exactly what sorting every stored message would,
// however the walls collide (equal walls take neighbouring seqs) and
// whatever the query. This checks the early stop of the seq walk.
func TestHistoryMatchesBruteForce(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"lunch", "coffee", "meeting", "deploy", "friday", "zebra"}
	kinds := []string{"text", "text", "text", "note"}
	people := []person{alice, bob, carol}
	var all []*message.Envelope
	var batch []*message.Envelope
	for i := range 400 {
		// Walls crowd into few microseconds, so many share a seq floor.
		ts := message.Timestamp{
			Wall:    at(0).Wall + int64(rng.IntN(300))*int64(rng.IntN(3)*700+1),
			Logical: uint32(rng.IntN(3)),
		}
		fi := rng.IntN(3)
		from, to := people[fi], people[(fi+1+rng.IntN(2))%3]
		body := fmt.Sprintf("%s %s #%d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], i)
		e := from.msgKind(t, to, ts, kinds[rng.IntN(len(kinds))], body)
		all = append(all, e)
		if from.id == alice.id {
			if err := s.AddOutgoing(ctx, e); err != nil {
				t.Fatal(err)
			}
		} else {
			batch = append(batch, e)
		}
	}
	if _, err := s.AddReceivedBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, message.Compare)
	peerOf := func(e *message.Envelope) string {
		if e.Author == alice.id {
			return e.To
		}
		return e.Author
	}
	contains := func(body, word string) bool {
		for _, w := range splitWords(body) {
			if w == word {
				return true
			}
		}
		return false
	}
	for i := range 200 {
		q := Query{Limit: rng.IntN(30) - 5}
		if rng.IntN(2) == 0 {
			q.Peer = people[rng.IntN(3)].id
		}
		if rng.IntN(2) == 0 {
			q.Search = words[rng.IntN(len(words))]
		}
		if rng.IntN(3) == 0 {
			q.Since = time.Unix(0, at(0).Wall+int64(rng.IntN(200000)))
		}
		if rng.IntN(4) == 0 {
			q.Kinds = []string{"note"}
		}
		kindsWanted := q.Kinds
		if kindsWanted == nil {
			kindsWanted = []string{"text"}
		}
		var want []string
		for _, e := range all {
			if (q.Peer == "" || peerOf(e) == q.Peer) && (q.Search == "" || contains(e.Body, q.Search)) &&
				(q.Since.IsZero() || e.Time.Wall >= q.Since.UnixNano()) && slices.Contains(kindsWanted, e.Kind) {
				want = append(want, e.ID)
			}
		}
		if q.Limit > 0 && len(want) > q.Limit {
			want = want[len(want)-q.Limit:]
		}
		got, err := s.History(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), want) {
			t.Fatalf("query %d %+v:\n got %v\nwant %v", i, q, ids(got), want)
		}
	}
}

func splitWords(s string) []string {
	var out []string
	w := ""
	for _, r := range s + " " {
		if isTokenRune(r) {
			w += string(r)
		} else if w != "" {
			out = append(out, w)
			w = ""
		}
	}
	return out
}

func TestStatesOnlyMoveForward(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		steps []State
		want  []bool // changed, per step
		final State
	}{
		{"in order", []State{Sent, Delivered, Read}, []bool{true, true, true}, Read},
		{"skip ahead", []State{Delivered}, []bool{true}, Delivered},
		{"back is refused", []State{Delivered, Sent, Queued}, []bool{true, false, false}, Delivered},
		{"read then delivered", []State{Read, Delivered}, []bool{true, false}, Read},
		{"same twice", []State{Sent, Sent}, []bool{true, false}, Sent},
		{"queued again", []State{Queued}, []bool{false}, Queued},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t)
			e := alice.msg(t, bob, at(1), "hi")
			if err := s.AddOutgoing(ctx, e); err != nil {
				t.Fatal(err)
			}
			for i, st := range c.steps {
				changed, err := s.SetState(ctx, e.ID, st)
				if err != nil {
					t.Fatal(err)
				}
				if changed != c.want[i] {
					t.Errorf("SetState(%v) changed = %v, want %v", st, changed, c.want[i])
				}
			}
			r, err := s.Get(ctx, alice.id, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != c.final {
				t.Errorf("final state %v, want %v", r.State, c.final)
			}
		})
	}
}

func TestSetStateRefusals(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	in := bob.msg(t, alice, at(1), "received")
	if _, err := s.AddReceived(ctx, in); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   string
		st   State
		err  bool
	}{
		{"unknown id", message.NewID(), Delivered, false},
		{"received message", in.ID, Read, false}, // MarkRead's job
		{"invalid state", in.ID, State(7), true},
		{"negative state", in.ID, State(-1), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			changed, err := s.SetState(ctx, c.id, c.st)
			if (err != nil) != c.err || changed {
				t.Errorf("SetState = %v, %v", changed, err)
			}
		})
	}
}

func TestApplyReceiptOnlyFromRecipient(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	e := alice.msg(t, bob, at(1), "hi bob")
	if err := s.AddOutgoing(ctx, e); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.ApplyReceipt(ctx, carol.id, e.ID, Read); err != nil || changed {
		t.Errorf("receipt from carol: %v, %v; want ignored", changed, err)
	}
	if changed, err := s.ApplyReceipt(ctx, bob.id, e.ID, Read); err != nil || !changed {
		t.Errorf("receipt from bob: %v, %v; want applied", changed, err)
	}
}

func TestApplyReceipts(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	m1, m2, m3 := alice.msg(t, bob, at(1), "m1"), alice.msg(t, bob, at(2), "m2"), alice.msg(t, bob, at(3), "m3")
	c1 := alice.msg(t, carol, at(4), "c1")
	r1 := bob.msg(t, alice, at(5), "r1")
	for _, e := range []*message.Envelope{m1, m2, m3, c1} {
		if err := s.AddOutgoing(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddReceived(ctx, r1); err != nil {
		t.Fatal(err)
	}
	state := func(e *message.Envelope) State {
		t.Helper()
		r, err := s.Get(ctx, e.Author, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r.State
	}
	for _, c := range []struct {
		name string
		ids  []string
		st   State
		want []string
	}{
		{"only bob's, once each", []string{m2.ID, c1.ID, r1.ID, "0123", m1.ID, m2.ID}, Delivered, []string{m2.ID, m1.ID}},
		{"again: nothing changes", []string{m1.ID, m2.ID}, Delivered, nil},
		{"never backwards", []string{m1.ID, m3.ID}, Sent, []string{m3.ID}},
		{"read", []string{m1.ID, m3.ID}, Read, []string{m1.ID, m3.ID}},
		{"none", nil, Read, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ApplyReceipts(ctx, bob.id, c.ids, c.st)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("ApplyReceipts = %v, %v; want %v", got, err, c.want)
			}
		})
	}
	for e, want := range map[*message.Envelope]State{m1: Read, m2: Delivered, m3: Read, c1: Queued, r1: Delivered} {
		if got := state(e); got != want {
			t.Errorf("%s is %v, want %v", e.Body, got, want)
		}
	}
	if _, err := s.ApplyReceipts(ctx, "", []string{m1.ID}, Read); err == nil {
		t.Error("no peer: no error")
	}
	if _, err := s.ApplyReceipts(ctx, bob.id, []string{m1.ID}, State(7)); err == nil {
		t.Error("invalid state: no error")
	}
}

// More ids than one statement takes: every one is applied, in one call.
func TestApplyReceiptsManyIDs(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const n = 2*maxReceiptChunk + 7
	envs := make([]*message.Envelope, n)
	ids := make([]string, n)
	for i := range envs {
		envs[i] = alice.msg(t, bob, at(float64(i)), fmt.Sprint("m", i))
		ids[i] = envs[i].ID
	}
	if _, err := s.add(ctx, envs, nil, true); err != nil {
		t.Fatal(err)
	}
	got, err := s.ApplyReceipts(ctx, bob.id, ids, Delivered)
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("ApplyReceipts changed %d of %d (%v)", len(got), n, err)
	}
	if recs, err := s.Outbox(ctx, bob.id, 0); err != nil || len(recs) != 0 {
		t.Fatalf("outbox after the receipts: %d messages, %v", len(recs), err)
	}
}

func TestOutbox(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	// Written out of order on purpose: the outbox sorts by time.
	b3 := alice.msg(t, bob, at(3), "b3")
	b1 := alice.msg(t, bob, at(1), "b1")
	b2 := alice.msg(t, bob, at(2), "b2")
	c1 := alice.msg(t, carol, at(0.5), "c1")
	for _, e := range []*message.Envelope{b3, b1, b2, c1} {
		if err := s.AddOutgoing(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// A received message is never in the outbox.
	if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(0), "from bob")); err != nil {
		t.Fatal(err)
	}
	outbox := func(limit int) []string {
		t.Helper()
		recs, err := s.Outbox(ctx, bob.id, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if string(r.Sealed) == "" || !r.Outgoing {
				t.Errorf("outbox record %s: %+v", r.Body, r)
			}
		}
		return bodies(recs)
	}
	if got := outbox(0); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Errorf("outbox = %v", got)
	}
	if got := outbox(2); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Errorf("outbox limit 2 = %v", got)
	}
	sum, err := s.OutboxSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []OutboxEntry{
		{Peer: carol.id, Count: 1, Oldest: c1.Time.WallTime()},
		{Peer: bob.id, Count: 3, Oldest: b1.Time.WallTime()},
	}
	if !slices.EqualFunc(sum, want, func(a, b OutboxEntry) bool {
		return a.Peer == b.Peer && a.Count == b.Count && a.Oldest.Equal(b.Oldest)
	}) {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}

	s.SetState(ctx, b1.ID, Sent) // sent but not acknowledged: still waiting
	if got := outbox(0); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Errorf("after Sent: outbox = %v", got)
	}
	s.SetState(ctx, b1.ID, Delivered)
	s.SetState(ctx, b3.ID, Read)
	if got := outbox(0); !slices.Equal(got, []string{"b2"}) {
		t.Errorf("after delivery: outbox = %v", got)
	}
	s.SetState(ctx, b2.ID, Delivered)
	s.SetState(ctx, c1.ID, Delivered)
	if got := outbox(0); len(got) != 0 {
		t.Errorf("outbox not empty: %v", got)
	}
	if peers, err := s.PendingPeers(ctx); err != nil || len(peers) != 0 {
		t.Errorf("PendingPeers = %v, %v", peers, err)
	}
}

// The outbox survives a restart.
func TestOutboxAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	ctx := context.Background()
	s, err := Open(path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	e := alice.msg(t, bob, at(1), "wait for me")
	if err := s.AddOutgoing(ctx, e); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path, testOptions(t))
	peers, err := s.PendingPeers(ctx)
	if err != nil || !slices.Equal(peers, []string{bob.id}) {
		t.Fatalf("PendingPeers = %v, %v", peers, err)
	}
	recs, err := s.Outbox(ctx, bob.id, 10)
	if err != nil || len(recs) != 1 || string(recs[0].Sealed) != string(e.Sealed()) {
		t.Fatalf("Outbox = %v, %v", recs, err)
	}
}

func TestMarkRead(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	r1 := bob.msg(t, alice, at(1), "one")
	r2 := bob.msg(t, alice, at(2), "two")
	out := alice.msg(t, bob, at(3), "mine")
	s.AddReceived(ctx, r1)
	s.AddReceived(ctx, r2)
	s.AddOutgoing(ctx, out)
	for _, c := range []struct {
		name string
		ids  []string
		want []string
	}{
		{"first", []string{r2.ID, r1.ID, out.ID, message.NewID()}, []string{"one", "two"}},
		{"again", []string{r1.ID, r2.ID}, nil},
		{"none", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.MarkRead(ctx, c.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bodies(got), c.want) {
				t.Errorf("changed = %v, want %v", bodies(got), c.want)
			}
			for _, r := range got {
				if r.State != Read {
					t.Errorf("%s: state %v", r.Body, r.State)
				}
			}
		})
	}
	if r, _ := s.Get(ctx, alice.id, out.ID); r.State != Queued {
		t.Errorf("outgoing message state %v after MarkRead, want queued", r.State)
	}
}

func TestMarkReadManyIDs(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var envs []*message.Envelope
	var all []string
	for i := range 1200 {
		e := bob.msg(t, alice, at(float64(i)), fmt.Sprint(i))
		envs = append(envs, e)
		all = append(all, e.ID)
	}
	if _, err := s.AddReceivedBatch(ctx, envs); err != nil {
		t.Fatal(err)
	}
	got, err := s.MarkRead(ctx, all)
	if err != nil || len(got) != 1200 {
		t.Fatalf("MarkRead = %d records, %v", len(got), err)
	}
}

func TestHistory(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	add := func(e *message.Envelope) {
		t.Helper()
		var err error
		if e.Author == alice.id {
			err = s.AddOutgoing(ctx, e)
		} else {
			_, err = s.AddReceived(ctx, e)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	add(bob.msg(t, alice, at(1), "lunch today?"))
	add(alice.msg(t, bob, at(2), "yes, lunch at noon"))
	add(carol.msg(t, alice, at(3), "is the build green?"))
	add(alice.msg(t, carol, at(4), "green, and lunch is on me"))
	add(bob.msgKind(t, alice, at(5), "typing", "lunch"))
	add(bob.msg(t, alice, at(6), "Café crème after LUNCH"))
	add(carol.msg(t, alice, at(7), `say "hello" (NEAR) -x * y OR z AND q:w ^a +b`))
	add(carol.msg(t, alice, at(8), "lunchbox"))

	for _, c := range []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, []string{"lunch today?", "yes, lunch at noon", "is the build green?",
			"green, and lunch is on me", "Café crème after LUNCH", `say "hello" (NEAR) -x * y OR z AND q:w ^a +b`, "lunchbox"}},
		{"newest two, newest last", Query{Limit: 2}, []string{`say "hello" (NEAR) -x * y OR z AND q:w ^a +b`, "lunchbox"}},
		{"peer bob", Query{Peer: bob.id}, []string{"lunch today?", "yes, lunch at noon", "Café crème after LUNCH"}},
		{"peer carol newest 1", Query{Peer: carol.id, Limit: 1}, []string{"lunchbox"}},
		{"since", Query{Since: at(6).WallTime()}, []string{"Café crème after LUNCH", `say "hello" (NEAR) -x * y OR z AND q:w ^a +b`, "lunchbox"}},
		{"kinds", Query{Kinds: []string{"typing"}}, []string{"lunch"}},
		{"search across conversations", Query{Search: "lunch"}, []string{"lunch today?", "yes, lunch at noon",
			"green, and lunch is on me", "Café crème after LUNCH"}},
		{"search newest 2", Query{Search: "lunch", Limit: 2}, []string{"green, and lunch is on me", "Café crème after LUNCH"}},
		{"search in one conversation", Query{Search: "lunch", Peer: carol.id}, []string{"green, and lunch is on me"}},
		{"search all words", Query{Search: "lunch green"}, []string{"green, and lunch is on me"}},
		{"search case and diacritics", Query{Search: "CAFE creme"}, []string{"Café crème after LUNCH"}},
		{"search prefix", Query{Search: "lunch*", Limit: 1}, []string{"lunchbox"}},
		{"search quoted", Query{Search: `"hello"`}, []string{`say "hello" (NEAR) -x * y OR z AND q:w ^a +b`}},
		{"search operator words literally", Query{Search: "NEAR OR AND"}, []string{`say "hello" (NEAR) -x * y OR z AND q:w ^a +b`}},
		{"search column filter literally", Query{Search: "q:w"}, []string{`say "hello" (NEAR) -x * y OR z AND q:w ^a +b`}},
		{"search minus literally", Query{Search: "-x"}, []string{`say "hello" (NEAR) -x * y OR z AND q:w ^a +b`}},
		{"search nothing found", Query{Search: "dinner"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.History(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bodies(got), c.want) {
				t.Errorf("got  %q\nwant %q", bodies(got), c.want)
			}
		})
	}
}

// Any search text is a valid query: never a syntax error.
func TestHostileSearch(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(1), `a "quoted" NEAR(x y) -minus * star`)); err != nil {
		t.Fatal(err)
	}
	for _, q := range hostileSearches {
		t.Run(fmt.Sprintf("%q", q), func(t *testing.T) {
			if _, err := s.History(ctx, Query{Search: q}); err != nil {
				t.Errorf("History(Search: %q) = %v", q, err)
			}
		})
	}
}

var hostileSearches = []string{
	`"`, `""`, `"""`, `*`, `**`, `* *`, `NEAR(`, `NEAR(a b`, `NEAR(a b, 2)`, `-`, `--`, `-a`, `a -b`,
	`a OR`, `OR`, `AND`, `NOT`, `NOT a`, `(`, `)`, `()`, `a)`, `^`, `^a`, `+`, `a + b`, `:`, `body:x`,
	`{body}: x`, `'`, `';DROP TABLE messages;--`, `\`, `%`, `_`, "\x00", "a\x00b", "\xff\xfe", `"a`, `a"`,
	`"unbalanced quote`, `"a" "b`, "\u200b", "🙂", "é", `a*b`, `*a`, `a**`, `"*"`, `""*`, `x"*`, "\t\n",
	`rank`, `rowid`, `messages_fts`, `MATCH`, `"NEAR"`, `col:`, `-"x"`,
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		kept []*message.Envelope
	)
	for i := range 50 {
		wg.Go(func() {
			e := bob.msg(t, alice, at(float64(i)), fmt.Sprint(i))
			_, err := s.AddReceived(ctx, e)
			switch {
			case err == nil:
				mu.Lock()
				kept = append(kept, e)
				mu.Unlock()
			case !errors.Is(err, ErrClosed):
				t.Errorf("AddReceived during Close: %v", err)
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(99), "late")); !errors.Is(err, ErrClosed) {
		t.Errorf("AddReceived after Close: %v, want ErrClosed", err)
	}
	if _, err := s.History(ctx, Query{}); !errors.Is(err, ErrClosed) {
		t.Errorf("History after Close: %v, want ErrClosed", err)
	}
	s = openAt(t, path, testOptions(t))
	for _, e := range kept {
		if _, err := s.Get(ctx, bob.id, e.ID); err != nil {
			t.Errorf("message %s reported stored before Close is missing: %v", e.Body, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(1), "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("AddReceived with a canceled context: %v", err)
	}
	if n, _ := s.Count(context.Background()); n != 0 {
		t.Errorf("Count = %d, want 0", n)
	}
}

// Writes from two handles on one file (as a node and a one-shot command
// in another process would) both succeed: WAL and the busy timeout.
func TestTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	a := openAt(t, path, testOptions(t))
	b := openAt(t, path, testOptions(t))
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(float64(i)), fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, s := range []*Store{a, b} {
		if n, err := s.Count(ctx); err != nil || n != 100 {
			t.Errorf("Count = %d, %v; want 100", n, err)
		}
	}
	if err := a.Check(ctx); err != nil {
		t.Error(err)
	}
}

func TestStateText(t *testing.T) {
	for _, c := range []struct {
		st   State
		text string
	}{{Queued, "queued"}, {Sent, "sent"}, {Delivered, "delivered"}, {Read, "read"}} {
		t.Run(c.text, func(t *testing.T) {
			if c.st.String() != c.text {
				t.Errorf("String() = %q", c.st.String())
			}
			var back State
			if err := back.UnmarshalText([]byte(c.text)); err != nil || back != c.st {
				t.Errorf("UnmarshalText = %v, %v", back, err)
			}
		})
	}
	if _, err := State(9).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid state succeeded")
	}
}

// Group commit with and without a batch window and with small batches:
// every concurrent write is stored, each exactly once.
func TestGroupCommit(t *testing.T) {
	for _, c := range []struct {
		name   string
		window time.Duration
		max    int
	}{
		{"defaults", 0, 0},
		{"window", 2 * time.Millisecond, 0},
		{"batches of 3", 0, 3},
		{"window and batches of 3", time.Millisecond, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			opt := testOptions(t)
			opt.BatchWindow, opt.MaxBatch = c.window, c.max
			s := openAt(t, filepath.Join(t.TempDir(), "history.db"), opt)
			ctx := context.Background()
			var wg sync.WaitGroup
			for round := range 3 {
				for i := range 40 {
					wg.Go(func() {
						e := bob.msg(t, alice, at(float64(round*100+i)), fmt.Sprint(round, i))
						if ins, err := s.AddReceived(ctx, e); err != nil || !ins {
							t.Errorf("AddReceived = %v, %v", ins, err)
						}
					})
				}
				wg.Wait()
			}
			if n, err := s.Count(ctx); err != nil || n != 120 {
				t.Errorf("Count = %d, %v; want 120", n, err)
			}
		})
	}
}

// Bodies are indexed in one statement per transaction, as JSON; a body
// that is not valid UTF-8 (an envelope changed after sealing) cannot go
// through JSON unchanged and is indexed on its own, exactly as stored, so
// that the index keeps matching its content.
func TestIndexInvalidUTF8Body(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	odd := bob.msg(t, alice, at(1), "placeholder")
	odd.Body = "caf\xe9 lunch"
	batch := []*message.Envelope{bob.msg(t, alice, at(0), "lunch <b>&</b> \"soon\""), odd, bob.msg(t, alice, at(2), "lunch too")}
	if _, err := s.AddReceivedBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	recs, err := s.History(ctx, Query{Search: "lunch"})
	if err != nil || len(recs) != 3 {
		t.Fatalf("search found %d of 3 (%v)", len(recs), err)
	}
	if recs[1].Body != odd.Body {
		t.Errorf("body stored as %q", recs[1].Body)
	}
	if recs, err := s.History(ctx, Query{Search: "soon"}); err != nil || len(recs) != 1 {
		t.Fatalf("search for a quoted word found %d (%v)", len(recs), err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExternalVersionMovesOnlyForOtherWriters: the outbox skips its
// query while ExternalVersion stands still, so the number must move when
// another process (here a second Store on the same file, as a one-shot
// command opens) stores a message, and must not move for this Store's own
// writes, or an idle node would query after each of them.
func TestExternalVersionMovesOnlyForOtherWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	s := openAt(t, path, testOptions(t))
	v0, err := s.ExternalVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddOutgoing(ctx, alice.msg(t, bob, at(1), "own")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.ExternalVersion(ctx); err != nil || v != v0 {
		t.Errorf("after our own write: ExternalVersion = %d, %v; want %d", v, err, v0)
	}

	other := openAt(t, path, testOptions(t))
	if err := other.AddOutgoing(ctx, alice.msg(t, carol, at(2), "from another process")); err != nil {
		t.Fatal(err)
	}
	v1, err := s.ExternalVersion(ctx)
	if err != nil || v1 == v0 {
		t.Errorf("after another writer's commit: ExternalVersion = %d, %v; want a change from %d", v1, err, v0)
	}
	if peers, err := s.PendingPeers(ctx); err != nil || len(peers) != 2 {
		t.Errorf("PendingPeers = %v, %v; want bob and carol", peers, err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExternalVersion(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
