package node

import (
	"context"
	"encoding/json"
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
	"lanchat/mesh"
)

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, timeout, cond)
}

func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelInfo) }

type running struct {
	n      *Node
	dir    string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	events []any
	once   sync.Once
	err    error
}

func (r *running) info() ReadyEvent { i, _ := r.n.Info(); return i }

func (r *running) gossip() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.info().GossipPort))
}

func (r *running) messages() []MessageEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []MessageEvent
	for _, e := range r.events {
		if m, ok := e.(MessageEvent); ok && !m.Outgoing {
			out = append(out, m)
		}
	}
	return out
}

func start(t *testing.T, name string, join ...string) *running {
	t.Helper()
	return startNode(t, Config{DataDir: t.TempDir(), Name: name, Join: join})
}

// startNode runs a node on loopback with shrunk timers; cfg needs at
// least DataDir and Name.
func startNode(tb testing.TB, cfg Config) *running {
	tb.Helper()
	cfg.Bind, cfg.NoMDNS = "127.0.0.1", true
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	cfg.MeshTune = func(c *memberlist.Config) {
		c.ProbeInterval = 100 * time.Millisecond
		c.PushPullInterval = time.Second
	}
	n, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r := &running{n: n, dir: cfg.DataDir, done: make(chan error, 1)}
	n.Subscribe(func(ev any) { r.mu.Lock(); r.events = append(r.events, ev); r.mu.Unlock() })
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
	ca, err := Connect(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice sees bob", 5*time.Second, func() bool {
		ps, _ := ca.Peers(ctx)
		return len(ps) == 1 && ps[0].Name == "bob" && ps[0].Verified
	})
	fi, err := os.Stat(ControlSocket(a.dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	res, err := ca.Send(ctx, "bob", "hello bob", false, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.To.ID != b.info().ID {
		t.Fatalf("sent to %v", res.To)
	}
	waitFor(t, "bob got it", 2*time.Second, func() bool { return len(b.messages()) == 1 })
	m := b.messages()[0]
	if m.Text != "hello bob" || m.From.ID != a.info().ID || m.From.Name != "alice" || m.ID != res.ID {
		t.Fatalf("bob got %+v", m)
	}

	_, err = ca.Send(ctx, "nobody", "x", false, time.Second)
	var re *RecipientError
	if !errors.As(err, &re) || !errors.Is(err, ErrUnknownRecipient) || !strings.Contains(err.Error(), "bob") {
		t.Fatalf("unknown recipient: %v", err)
	}

	if err := ca.SetStatus(ctx, "busy", "in a meeting"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob sees busy", 5*time.Second, func() bool {
		p, _ := b.n.Peers()
		return len(p) == 1 && p[0].State == mesh.Busy && p[0].Status == "in a meeting"
	})
	if err := ca.SetStatus(ctx, "offline", ""); err == nil {
		t.Fatal("setting state offline was accepted")
	}
	if err := ca.SetStatus(ctx, "away", "\x1b[31mred"); err == nil {
		t.Fatal("status text with an escape was accepted")
	}
}

func TestEventsStream(t *testing.T) {
	a := start(t, "alice")
	c, err := Connect(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	go c.Events(ctx, func(m json.RawMessage) {
		var v struct{ Type, Change string }
		json.Unmarshal(m, &v)
		got <- v.Type + "/" + v.Change
	})
	if ev := <-got; ev != "ready/" {
		t.Fatalf("first event %q, want ready", ev)
	}
	start(t, "bob", a.gossip())
	select {
	case ev := <-got:
		if ev != "presence/joined" {
			t.Fatalf("event %q, want presence/joined", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no presence event")
	}
}

func TestSecondNodeOnDataDirIsRefused(t *testing.T) {
	a := start(t, "alice")
	n, err := New(Config{DataDir: a.dir, Name: "alice2", Bind: "127.0.0.1", NoMDNS: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second node: %v, want ErrInUse", err)
	}
	// the first node is unharmed
	if _, err := Connect(a.dir); err != nil {
		t.Fatalf("first node's control socket gone: %v", err)
	}
}

func TestUnusableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	n, _ := New(Config{DataDir: file, Name: "x", Bind: "127.0.0.1", NoMDNS: true, Logger: testLogger(t)})
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("data dir that is a file: %v", err)
	}
	if os.Getuid() == 0 {
		return // root reads anything; the mode check below cannot fail
	}
	ro := t.TempDir()
	os.Chmod(ro, 0o500)
	n, _ = New(Config{DataDir: ro, Name: "x", Bind: "127.0.0.1", NoMDNS: true, Logger: testLogger(t)})
	if err := n.Run(context.Background()); err == nil {
		t.Fatal("read-only data dir accepted")
	}
}

func TestOneShotSendAndDirectory(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	waitFor(t, "mesh formed", 5*time.Second, func() bool { p, _ := a.n.Peers(); return len(p) == 1 })
	o, err := NewOneShot(Config{
		DataDir: t.TempDir(), Name: "script", NoMDNS: true, Logger: testLogger(t),
		Join: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(a.info().Port))},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Send(context.Background(), "bob", "from a script", false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob got it", 2*time.Second, func() bool { return len(b.messages()) == 1 })
	m := b.messages()[0]
	if m.From.Name != "script" || m.From.ID != o.Identity().ID || m.ID != res.ID {
		t.Fatalf("bob got %+v", m)
	}
	// the one-shot never became a member
	for _, r := range []*running{a, b} {
		ps, _ := r.n.Peers()
		for _, p := range ps {
			if p.ID == o.Identity().ID {
				t.Fatalf("one-shot sender appears as a peer of %s", r.info().Name)
			}
		}
	}
}
