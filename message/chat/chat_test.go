package chat

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// The chat service on its own: a real SQLite history, a fake presence
// and a fake transport, no node and no network.

type party struct {
	id   string
	key  ed25519.PrivateKey
	name string
}

func newParty(t testing.TB, name string) party {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return party{id: mesh.IDFromPublicKey(pub), key: key, name: name}
}

// presence is a fake: who is online is what the test says.
type presence struct {
	mu    sync.Mutex // guards peers
	peers map[string]mesh.Peer
}

func (p *presence) set(id, name string, st mesh.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peers == nil {
		p.peers = map[string]mesh.Peer{}
	}
	p.peers[id] = mesh.Peer{ID: id, Name: name, State: st}
}

func (p *presence) Peers() []mesh.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []mesh.Peer
	for _, q := range p.peers {
		out = append(out, q)
	}
	return out
}

func (p *presence) Peer(id string) (mesh.Peer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, ok := p.peers[id]
	return q, ok
}

// transport is a fake: it acknowledges every envelope unless told to
// fail, and keeps what it was handed, opened, in order.
type transport struct {
	mu   sync.Mutex // guards the fields below
	fail error
	sent []*message.Envelope
}

func (tr *transport) SendBatch(ctx context.Context, to string, items []message.Queued, written func(bool)) []error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	errs := make([]error, len(items))
	if tr.fail != nil {
		written(false)
		for i := range errs {
			errs[i] = tr.fail
		}
		return errs
	}
	for i, it := range items {
		env, err := message.Open(it.Sealed)
		if err != nil || env.To != to || env.ID != it.ID {
			errs[i] = fmt.Errorf("transport got a bad envelope: %v", err)
			continue
		}
		tr.sent = append(tr.sent, env)
	}
	written(true)
	return errs
}

func (tr *transport) setFail(err error) {
	tr.mu.Lock()
	tr.fail = err
	tr.mu.Unlock()
}

func (tr *transport) texts(kind string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, e := range tr.sent {
		if e.Kind == kind {
			out = append(out, e.Body)
		}
	}
	return out
}

// events records what the service published.
type events struct {
	mu  sync.Mutex // guards evs
	evs []Event
}

func (e *events) publish(ev Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }

func (e *events) receipts(id string) []store.State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []store.State
	for _, ev := range e.evs {
		if r, ok := ev.(ReceiptEvent); ok && r.ID == id {
			out = append(out, r.State)
		}
	}
	return out
}

func (e *events) messages() []MessageEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []MessageEvent
	for _, ev := range e.evs {
		if m, ok := ev.(MessageEvent); ok {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	svc  *Service
	st   *store.Store
	me   party
	pres *presence
	tr   *transport
	ev   *events
	dir  string
}

func newFixture(t *testing.T, cfg Config) *fixture { return newFixtureWith(t, cfg, true) }

func newFixtureWith(t *testing.T, cfg Config, withTransport bool) *fixture {
	t.Helper()
	dir := t.TempDir()
	opt := store.DefaultOptions()
	opt.Synchronous = "NORMAL"
	opt.Logger = testutil.Logger(t, slog.LevelWarn)
	st, err := store.Open(filepath.Join(dir, "history.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, me: newParty(t, "alice"), pres: &presence{}, tr: &transport{}, ev: &events{}, dir: dir}
	cfg.Store, cfg.Self, cfg.Key, cfg.Name = st, f.me.id, f.me.key, func() string { return "alice" }
	cfg.NoGeneral = true // these are the direct messages' tests; rooms_test.go has the rooms
	cfg.Presence, cfg.Publish = f.pres, f.ev.publish
	if withTransport {
		cfg.Transport = f.tr
	}
	cfg.ContactsPath = filepath.Join(dir, "contacts.json")
	cfg.Logger = testutil.Logger(t, slog.LevelWarn)
	if f.svc, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return f
}

func (f *fixture) state(t *testing.T, id string) store.State {
	t.Helper()
	r, err := f.st.Get(context.Background(), f.me.id, id)
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

// sealFrom writes an envelope as p, to "to".
func sealFrom(t testing.TB, p party, to, kind, body string) *message.Envelope {
	t.Helper()
	env := &message.Envelope{Author: p.id, AuthorName: p.name, To: to, Time: message.NewClock(time.Now).Now(), Kind: kind, Body: body}
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

func TestSendToOnlinePeerIsDeliveredAndRecorded(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	res, err := f.svc.Send(context.Background(), "bob", "hello", false)
	if err != nil || res.State != store.Delivered || res.To.ID != bob.id {
		t.Fatalf("send: %+v, %v", res, err)
	}
	if got := f.tr.texts(message.KindText); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("transport got %q", got)
	}
	testutil.WaitFor(t, "delivery recorded", 5*time.Second, func() bool { return f.state(t, res.ID) == store.Delivered })
	if rs := f.ev.receipts(res.ID); len(rs) != 2 || rs[0] != store.Queued || rs[1] != store.Delivered {
		t.Fatalf("receipt events %v, want queued then delivered", rs)
	}
	if m := f.ev.messages(); len(m) != 1 || !m[0].Outgoing || m[0].To.Name != "bob" {
		t.Fatalf("message events %+v", m)
	}
}

func TestSendToOfflinePeerWaitsAndGoesOutInOrderWhenBack(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Offline)
	var ids []string
	for i := range 5 {
		res, err := f.svc.Send(context.Background(), "bob", fmt.Sprintf("m%d", i), false)
		if err != nil || res.State != store.Queued {
			t.Fatalf("send %d: %+v, %v", i, res, err)
		}
		ids = append(ids, res.ID)
	}
	if got := f.tr.texts(message.KindText); len(got) != 0 {
		t.Fatalf("sent to an offline peer: %q", got)
	}
	ob, err := f.svc.Outbox(context.Background())
	if err != nil || len(ob) != 1 || ob[0].Count != 5 || ob[0].Peer.Name != "bob" {
		t.Fatalf("outbox %+v, %v", ob, err)
	}
	f.pres.set(bob.id, "bob", mesh.Available)
	f.svc.PeerOnline(bob.id)
	testutil.WaitFor(t, "the backlog delivered", 5*time.Second, func() bool { return len(f.tr.texts(message.KindText)) == 5 })
	for i, text := range f.tr.texts(message.KindText) {
		if text != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d on the wire is %q: out of order", i, text)
		}
	}
	testutil.WaitFor(t, "outbox empty", 5*time.Second, func() bool {
		ob, _ := f.svc.Outbox(context.Background())
		return len(ob) == 0
	})
}

func TestFailedAttemptLeavesMessageQueuedForTheRetry(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	f.tr.setFail(message.ErrPeerUnreachable)
	res, err := f.svc.Send(context.Background(), "bob", "try again", false)
	if err != nil || res.State != store.Queued {
		t.Fatalf("send through a failing transport: %+v, %v (want queued, no error)", res, err)
	}
	f.tr.setFail(nil)
	// The outbox's own retry (every second for online peers with
	// something waiting) delivers it, with nobody kicking.
	testutil.WaitFor(t, "the retry delivered it", 5*time.Second, func() bool { return f.state(t, res.ID) == store.Delivered })
	if got := f.tr.texts(message.KindText); len(got) != 1 {
		t.Fatalf("transport got %q, want the message once", got)
	}
}

func TestWithoutTransportEverythingWaits(t *testing.T) {
	f := newFixtureWith(t, Config{}, false) // offline reads: nobody to send with
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	res, err := f.svc.Send(context.Background(), bob.id, "later", false)
	if err != nil || res.State != store.Queued {
		t.Fatalf("send: %+v, %v", res, err)
	}
	if ob, _ := f.svc.Outbox(context.Background()); len(ob) != 1 {
		t.Fatalf("outbox %+v, want the message waiting", ob)
	}
}

func TestSendRefusesBadTextAndUnknownAndSelf(t *testing.T) {
	f := newFixture(t, Config{})
	f.pres.set(newParty(t, "bob").id, "bob", mesh.Available)
	for _, tt := range []struct {
		name, to, text string
		want           error
	}{
		{"empty", "bob", "  ", ErrInvalidText},
		{"not utf8", "bob", "a\xff", ErrInvalidText},
		{"unknown", "carol", "hi", ErrUnknownRecipient},
		{"self by id", f.me.id, "hi", ErrUnknownRecipient},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.Send(context.Background(), tt.to, tt.text, false); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if n, _ := f.st.Count(context.Background()); n != 0 {
		t.Fatalf("refused sends stored %d messages", n)
	}
}

func TestDeliverBatchStoresOnceAndPublishes(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	a := sealFrom(t, bob, f.me.id, message.KindText, "one")
	b := sealFrom(t, bob, f.me.id, message.KindText, "two")
	odd := sealFrom(t, bob, f.me.id, "poll", "?")
	errs := f.svc.DeliverBatch(context.Background(), []*message.Envelope{a, b, odd})
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("errs %v: want the texts stored and the unknown kind refused", errs)
	}
	// a resend (lost acknowledgement) is acknowledged, not shown again
	if errs := f.svc.DeliverBatch(context.Background(), []*message.Envelope{a}); errs[0] != nil {
		t.Fatalf("resend: %v", errs[0])
	}
	if m := f.ev.messages(); len(m) != 2 || m[0].Text != "one" || m[1].Text != "two" || m[0].From.Name != "bob" {
		t.Fatalf("message events %+v", m)
	}
	if p, err := f.svc.Resolve("bob"); err != nil || p.ID != bob.id {
		t.Fatalf("a sender is addressable by name after a message: %v, %v", p, err)
	}
}

func TestReceiptsMarkOnlyTheRecipientsMessagesRead(t *testing.T) {
	f := newFixture(t, Config{})
	bob, mallory := newParty(t, "bob"), newParty(t, "mallory")
	f.pres.set(bob.id, "bob", mesh.Available)
	f.pres.set(mallory.id, "mallory", mesh.Available)
	toBob, _ := f.svc.Send(context.Background(), "bob", "for bob", false)
	toMal, _ := f.svc.Send(context.Background(), "mallory", "for mallory", false)
	testutil.WaitFor(t, "both delivered", 5*time.Second, func() bool {
		return f.state(t, toBob.ID) == store.Delivered && f.state(t, toMal.ID) == store.Delivered
	})
	body := func(ids ...string) string {
		b, _ := json.Marshal(receiptBody{State: "read", IDs: ids})
		return string(b)
	}
	// mallory claims bob read his message: ignored, not an error
	errs := f.svc.DeliverBatch(context.Background(), []*message.Envelope{
		sealFrom(t, mallory, f.me.id, KindReceipt, body(toBob.ID)),
		sealFrom(t, bob, f.me.id, KindReceipt, body(toBob.ID)),
		sealFrom(t, bob, f.me.id, KindReceipt, `{"state":"read","ids":["not an id"]}`),
	})
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("errs %v: want two accepted and the malformed one refused", errs)
	}
	if st := f.state(t, toBob.ID); st != store.Read {
		t.Fatalf("bob's receipt: state %v, want read", st)
	}
	if st := f.state(t, toMal.ID); st != store.Delivered {
		t.Fatalf("mallory's message moved to %v by a receipt about bob's", st)
	}
	if rs := f.ev.receipts(toBob.ID); rs[len(rs)-1] != store.Read {
		t.Fatalf("no read receipt event: %v", rs)
	}
}

func TestMarkReadSendsOneReceiptToTheAuthor(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	var ids []string
	for i := range 3 {
		env := sealFrom(t, bob, f.me.id, message.KindText, fmt.Sprintf("m%d", i))
		f.svc.DeliverBatch(context.Background(), []*message.Envelope{env})
		ids = append(ids, env.ID)
	}
	h, err := f.svc.History(context.Background(), Query{Peer: "bob", MarkRead: true})
	if err != nil || len(h) != 3 {
		t.Fatalf("history %+v, %v", h, err)
	}
	// bob is offline: the receipt waits, and goes when he is back
	if got := f.tr.texts(KindReceipt); len(got) != 0 {
		t.Fatalf("receipt sent to an offline peer: %q", got)
	}
	f.pres.set(bob.id, "bob", mesh.Available)
	f.svc.PeerOnline(bob.id)
	testutil.WaitFor(t, "the receipt sent", 5*time.Second, func() bool { return len(f.tr.texts(KindReceipt)) == 1 })
	rb, err := parseReceipt(f.tr.texts(KindReceipt)[0])
	if err != nil || len(rb.IDs) != 3 {
		t.Fatalf("receipt %+v, %v", rb, err)
	}
	// reading again changes nothing and sends nothing more
	f.svc.History(context.Background(), Query{Peer: "bob", MarkRead: true})
	if err := f.svc.MarkRead(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	n, _ := f.st.Count(context.Background())
	if n != 4 { // three messages and one receipt
		t.Fatalf("store holds %d records, want 4", n)
	}
}

// TestReceiptsCountAgainstTheRateLimit: a flood of receipts is refused
// like a flood of messages.
func TestReceiptsCountAgainstTheRateLimit(t *testing.T) {
	f := newFixture(t, Config{PeerRate: 1, PeerBurst: 2})
	bob := newParty(t, "bob")
	var envs []*message.Envelope
	for range 4 {
		envs = append(envs, sealFrom(t, bob, f.me.id, KindReceipt, `{"state":"read","ids":[]}`))
	}
	errs := f.svc.DeliverBatch(context.Background(), envs)
	refused := 0
	for _, err := range errs {
		if errors.Is(err, errRateLimited) {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("%d of 4 receipts refused with a burst of 2, want 2: %v", refused, errs)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(10, 5, func() time.Time { return now })
	for i := range 5 {
		if !l.allow("a") {
			t.Fatalf("burst message %d refused", i)
		}
	}
	if l.allow("a") {
		t.Fatal("message over the burst allowed")
	}
	if !l.allow("b") {
		t.Fatal("another peer's allowance was used up by the first")
	}
	now = now.Add(99 * time.Millisecond)
	if l.allow("a") {
		t.Fatal("allowance refilled early")
	}
	now = now.Add(2 * time.Millisecond) // 10/s refills one token in 100 ms
	if !l.allow("a") {
		t.Fatal("allowance did not refill")
	}
}

func TestLimiterForgetsIdlePeersRatherThanGrow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(10, 5, func() time.Time { return now })
	for i := range maxBuckets {
		l.allow(fmt.Sprint("k", i))
	}
	now = now.Add(2 * time.Minute)
	l.allow("fresh")
	if l.k.Len() != 1 {
		t.Fatalf("%d buckets after the idle ones expired, want 1", l.k.Len())
	}
}

func FuzzParseReceipt(f *testing.F) {
	f.Add(`{"state":"read","ids":["0123456789abcdef0123456789abcdef"]}`)
	f.Add(`{"state":"read","ids":[]}`)
	f.Add(`{"state":"delivered","ids":[]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		rb, err := parseReceipt(body)
		if err != nil {
			return
		}
		if rb.State != "read" || len(rb.IDs) > maxReceiptIDs {
			t.Fatalf("accepted %+v", rb)
		}
		for _, id := range rb.IDs {
			if !validMessageID(id) {
				t.Fatalf("accepted id %q", id)
			}
		}
	})
}

// TestBacklogLargerThanAWindowGoesOutOnceInOrder: more waiting than one
// read of the store holds is sent in windows, each message once, oldest
// first.
func TestBacklogLargerThanAWindowGoesOutOnceInOrder(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Offline)
	const n = flushWindow*2 + 100
	var wg sync.WaitGroup
	for w := range 8 { // concurrent senders share the store's group commit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := f.svc.queue(context.Background(), bob.id, message.KindText, fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f.pres.set(bob.id, "bob", mesh.Available)
	f.svc.PeerOnline(bob.id)
	testutil.WaitFor(t, "the backlog delivered", 20*time.Second, func() bool {
		ob, _ := f.svc.Outbox(context.Background())
		return len(ob) == 0
	})
	got := f.tr.texts(message.KindText)
	if len(got) != n {
		t.Fatalf("transport got %d messages, want %d once each", len(got), n)
	}
	h, err := f.svc.History(context.Background(), Query{Peer: bob.id, Limit: n})
	if err != nil || len(h) != n {
		t.Fatalf("history: %d, %v", len(h), err)
	}
	for i, e := range h { // the conversation's order is the order on the wire
		if got[i] != e.Text {
			t.Fatalf("message %d on the wire is %q, the conversation has %q there", i, got[i], e.Text)
		}
	}
}
