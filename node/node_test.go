package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/testutil"
	"lanchat/node/api"
)

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, timeout, cond)
}

func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelInfo) }

// running is a node under test with every event it published.
type running struct {
	n      *Node
	dir    string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex // guards events
	events []api.Event
	once   sync.Once
	err    error
}

func (r *running) info() api.Ready { i, _ := r.n.info(); return i }

func (r *running) gossip() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.info().GossipPort))
}

func (r *running) messages() []api.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.Message
	for _, e := range r.events {
		if m, ok := e.(api.Message); ok && !m.Outgoing {
			out = append(out, m)
		}
	}
	return out
}

func (r *running) peers() []api.Peer {
	ps, _ := r.n.Peers(context.Background())
	return ps
}

func start(t *testing.T, name string, join ...string) *running {
	t.Helper()
	return startNode(t, Config{DataDir: t.TempDir(), Name: name, Join: join})
}

func testConfig(tb testing.TB, cfg Config) Config {
	cfg.Bind, cfg.NoMDNS = "127.0.0.1", true
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = 1 << 16 // the collector below must not fall behind in benchmarks
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	cfg.MeshTune = func(c *memberlist.Config) {
		c.ProbeInterval = 100 * time.Millisecond
		c.PushPullInterval = time.Second
	}
	return cfg
}

// startNode runs a node on loopback with shrunk timers; cfg needs at
// least DataDir and Name. Its events are collected through the API's
// event stream, as any client would read them.
func startNode(tb testing.TB, cfg Config) *running {
	tb.Helper()
	n, err := New(testConfig(tb, cfg))
	if err != nil {
		tb.Fatal(err)
	}
	r := &running{n: n, dir: cfg.DataDir, done: make(chan error, 1)}
	subscribed := make(chan struct{})
	go n.Events(context.Background(), func(ev api.Event) error {
		if _, ok := ev.(api.Snapshot); ok {
			close(subscribed)
			return nil
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		return nil
	})
	<-subscribed
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-r.done:
		tb.Fatalf("node did not start: %v", err)
	}
	tb.Cleanup(r.stop)
	return r
}

// stop ends the node cleanly (idempotent).
func (r *running) stop() {
	r.cancel()
	r.once.Do(func() { r.err = <-r.done })
}

func TestControlSocketSendPeersStatus(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	ctx := context.Background()
	ca, err := api.Connect(ctx, ControlSocket(a.dir))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice sees bob verified", 5*time.Second, func() bool {
		ps, _ := ca.Peers(ctx)
		return len(ps) == 1 && ps[0].Name == "bob" && ps[0].Verified
	})
	fi, err := os.Stat(ControlSocket(a.dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	res, err := ca.Send(ctx, api.SendRequest{To: "bob", Text: "hello bob", TimeoutMS: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if res.To.ID != b.info().ID || res.State != "delivered" {
		t.Fatalf("sent to %v, %s", res.To, res.State)
	}
	waitFor(t, "bob got it", 2*time.Second, func() bool { return len(b.messages()) == 1 })
	m := b.messages()[0]
	if m.Text != "hello bob" || m.From.ID != a.info().ID || m.From.Name != "alice" || m.ID != res.ID {
		t.Fatalf("bob got %+v", m)
	}

	_, err = ca.Send(ctx, api.SendRequest{To: "nobody", Text: "x", TimeoutMS: 1000})
	var ae *api.Error
	if !errors.As(err, &ae) || !errors.Is(err, api.ErrUnknownRecipient) || !strings.Contains(err.Error(), "bob") || len(ae.Online) != 1 {
		t.Fatalf("unknown recipient: %v", err)
	}

	if _, err := ca.SetStatus(ctx, api.StatusRequest{State: "busy", Text: "in a meeting"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob sees busy", 5*time.Second, func() bool {
		p := b.peers()
		return len(p) == 1 && p[0].State == "busy" && p[0].StatusText == "in a meeting"
	})
	// Set by another client (the socket's), it is an event on alice's
	// own stream, so a UI there shows it too.
	waitFor(t, "alice's stream has the change", 5*time.Second, func() bool { return len(a.selfChanges()) > 0 })
	if evs := a.selfChanges(); len(evs) != 1 || evs[0].Self.State != "busy" || evs[0].Self.StatusText != "in a meeting" || evs[0].Self.ID != a.info().ID {
		t.Fatalf("alice's self events %+v, want one: busy, in a meeting", evs)
	}
	if _, err := ca.SetStatus(ctx, api.StatusRequest{State: "offline"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("setting state offline: %v, want invalid", err)
	}
	if _, err := ca.SetStatus(ctx, api.StatusRequest{State: "away", Text: "\x1b[31mred"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("status text with an escape: %v, want invalid", err)
	}
	if evs := a.selfChanges(); len(evs) != 1 {
		t.Errorf("a refused status made self events: %+v", evs[1:])
	}
}

func (r *running) selfChanges() []api.SelfChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.SelfChange
	for _, e := range r.events {
		if v, ok := e.(api.SelfChange); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestEventsStreamStartsWithSnapshotAndNumbersEvents: over the socket, the
// first event is a snapshot that already lists the peer met before
// subscribing, and every later event is numbered after it, in order.
func TestEventsStreamStartsWithSnapshotAndNumbersEvents(t *testing.T) {
	a := start(t, "alice")
	start(t, "bob", a.gossip())
	waitFor(t, "alice sees bob", 5*time.Second, func() bool { return len(a.peers()) == 1 })
	c, err := api.Connect(context.Background(), ControlSocket(a.dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan api.Event, 64)
	go c.Events(ctx, func(ev api.Event) error { got <- ev; return nil })
	first := <-got
	snap, ok := first.(api.Snapshot)
	if !ok || len(snap.Peers) != 1 || snap.Peers[0].Name != "bob" || snap.Self.Name != "alice" || !snap.Self.Running {
		t.Fatalf("first event %#v, want a snapshot listing bob", first)
	}
	start(t, "carol", a.gossip())
	last := snap.Seq
	for {
		select {
		case ev := <-got:
			if ev.EventSeq() != last+1 {
				t.Fatalf("event %#v numbered %d after %d", ev, ev.EventSeq(), last)
			}
			last = ev.EventSeq()
			if p, ok := ev.(api.Presence); ok && p.Peer.Name == "carol" && p.Change == api.ChangeJoined {
				return
			}
		case <-ctx.Done():
			t.Fatal("no presence event for carol")
		}
	}
}

// TestVerificationIsPublished pins a gap the old node had: a peer whose
// key was proven by a handshake became verified with no event.
func TestVerificationIsPublished(t *testing.T) {
	a := start(t, "alice")
	start(t, "bob", a.gossip())
	waitFor(t, "a verified event for bob", 5*time.Second, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, ev := range a.events {
			if p, ok := ev.(api.Presence); ok && p.Change == api.ChangeVerified && p.Peer.Name == "bob" && p.Verified {
				return true
			}
		}
		return false
	})
}

// TestSlowSubscriberGetsResync: a subscriber that stops reading is sent a
// resync (never starved silently) while the node keeps publishing to
// everyone else.
func TestSlowSubscriberGetsResync(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Name: "alice", EventBuffer: 8}
	a := startNode(t, cfg)
	stuck := make(chan struct{})
	var got []api.Event
	res := make(chan error, 1)
	go func() {
		res <- a.n.Events(context.Background(), func(ev api.Event) error {
			got = append(got, ev)
			if len(got) == 2 {
				<-stuck // a reader that stopped
			}
			return nil
		})
	}()
	waitFor(t, "the slow subscriber to take its first event", 5*time.Second, func() bool {
		select {
		case <-res:
			return true
		default:
		}
		a.n.warning("tick") // events keep coming
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.events) > 40
	})
	close(stuck)
	select {
	case err := <-res:
		if !errors.Is(err, api.ErrResync) {
			t.Fatalf("slow subscriber ended with %v, want ErrResync", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow subscriber never ended")
	}
	if r, ok := got[len(got)-1].(api.Resync); !ok || r.Dropped == 0 {
		t.Fatalf("last event %#v, want a resync counting what was dropped", got[len(got)-1])
	}
	for i := 2; i < len(got)-1; i++ {
		if got[i].EventSeq() != got[i-1].EventSeq()+1 {
			t.Fatalf("events before the resync have a gap: %d then %d", got[i-1].EventSeq(), got[i].EventSeq())
		}
	}
	if _, err := a.n.Self(context.Background()); err != nil {
		t.Fatalf("node after a slow subscriber: %v", err)
	}
}

func TestSecondNodeOnDataDirIsRefused(t *testing.T) {
	a := start(t, "alice")
	_, err := New(testConfig(t, Config{DataDir: a.dir, Name: "alice2"}))
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second node: %v, want ErrInUse", err)
	}
	if _, err := api.Connect(context.Background(), ControlSocket(a.dir)); err != nil {
		t.Fatalf("first node's control socket gone: %v", err)
	}
}

func TestUnusableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := New(testConfig(t, Config{DataDir: file, Name: "x"})); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("data dir that is a file: %v", err)
	}
	if os.Getuid() == 0 {
		return // root writes anywhere; the mode check below cannot fail
	}
	ro := t.TempDir()
	os.Chmod(ro, 0o500)
	if _, err := New(testConfig(t, Config{DataDir: ro, Name: "x"})); err == nil {
		t.Fatal("read-only data dir accepted")
	}
}

// TestLifecycle: New starts nothing (no socket, no port); Run twice is an
// error; Shutdown and Close are idempotent, wait, and make every later
// call ErrClosed; a node that never ran releases its data directory.
func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	n, err := New(testConfig(t, Config{DataDir: dir, Name: "alice"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ControlSocket(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New opened the control socket: %v", err)
	}
	if s, err := n.Self(context.Background()); err != nil || s.Running || s.Name != "alice" {
		t.Fatalf("self before Run: %+v, %v", s, err)
	}
	n.Close()
	n.Close()
	if err := n.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	if _, err := n.Peers(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Peers after Close: %v", err)
	}

	// the directory is free again
	r := startNode(t, Config{DataDir: dir, Name: "alice"})
	if err := r.n.Run(context.Background()); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("second Run: %v, want an error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Shutdown returned %v, want ErrClosed", err)
	}
	r.once.Do(func() {})
	if err := r.n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.n.Close()
	if _, err := os.Stat(ControlSocket(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket left behind: %v", err)
	}
	if err := r.n.Events(ctx, func(api.Event) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Events after Shutdown: %v", err)
	}
}

func TestOneShotSendAndDirectory(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	waitFor(t, "mesh formed", 5*time.Second, func() bool { return len(a.peers()) == 1 })
	o, err := NewOneShot(Config{
		DataDir: t.TempDir(), Name: "script", NoMDNS: true, Logger: testLogger(t),
		Join: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(a.info().Port))},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Send(context.Background(), api.SendRequest{To: "bob", Text: "from a script"})
	if err != nil || res.State != "delivered" {
		t.Fatalf("one-shot send: %+v, %v", res, err)
	}
	waitFor(t, "bob got it", 2*time.Second, func() bool { return len(b.messages()) == 1 })
	m := b.messages()[0]
	if m.From.Name != "script" || m.From.ID != o.Identity().ID || m.ID != res.ID {
		t.Fatalf("bob got %+v", m)
	}
	// the one-shot never became a member
	for _, r := range []*running{a, b} {
		for _, p := range r.peers() {
			if p.ID == o.Identity().ID {
				t.Fatalf("one-shot sender appears as a peer of %s", r.info().Name)
			}
		}
	}
	// and its history has the message as delivered
	h, err := o.History(context.Background(), api.HistoryQuery{Peer: "bob"})
	if err != nil || len(h) != 1 || h[0].State != "delivered" {
		t.Fatalf("one-shot history %+v, %v", h, err)
	}
}
