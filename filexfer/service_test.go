package filexfer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/testutil"
)

// svcPeer is a Service behind a TLS listener, as a node would run it.
type svcPeer struct {
	me  peer
	svc *Service
	ln  net.Listener
	dir string

	mu     sync.Mutex // guards events
	events []Transfer
}

func newSvcPeer(t *testing.T, tweak func(*ServiceConfig)) *svcPeer {
	t.Helper()
	p := &svcPeer{me: newPeer(t), dir: t.TempDir()}
	cfg := DefaultServiceConfig(p.dir)
	cfg.Self = p.me.id
	cfg.Log = testutil.Logger(t, slog.LevelWarn)
	cfg.RetryEvery = 20 * time.Millisecond
	cfg.Send.ReplyTimeout = 5 * time.Second
	cfg.Send.IdleTimeout = 5 * time.Second
	cfg.Receive.IdleTimeout = 5 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	svc, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.svc = svc
	svc.Subscribe(func(tr Transfer) {
		p.mu.Lock()
		p.events = append(p.events, tr)
		p.mu.Unlock()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		svc.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := tls.Server(c, p.me.tlsConfig())
				if err := tc.Handshake(); err != nil {
					c.Close()
					return
				}
				id, _ := idOf(rawOf(tc.ConnectionState()))
				svc.HandleStream(tc, id)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		svc.Close()
		wg.Wait()
	})
	return p
}

// dialer reaches to as from, failing while away is set.
func dialer(from peer, to *svcPeer, away *atomic.Bool) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, id, proto string) (net.Conn, error) {
		if away != nil && away.Load() {
			return nil, errors.New("peer offline")
		}
		if id != to.me.id {
			return nil, errors.New("unknown peer")
		}
		d := tls.Dialer{Config: from.tlsConfig()}
		return d.DialContext(ctx, "tcp", to.ln.Addr().String())
	}
}

func waitState(t *testing.T, p *svcPeer, what string, want string) Transfer {
	t.Helper()
	var got Transfer
	testutil.WaitFor(t, what+" "+want, 20*time.Second, func() bool {
		ts := p.svc.Transfers()
		if len(ts) == 0 {
			return false
		}
		got = ts[len(ts)-1]
		return got.State == want
	})
	return got
}

// TestServiceAskThenAccept: the recipient is asked, accepts, and both
// sides list the transfer as done with every byte in place.
func TestServiceAskThenAccept(t *testing.T) {
	bob := newSvcPeer(t, nil)
	var alice *svcPeer
	alice = newSvcPeer(t, func(c *ServiceConfig) {})
	alice.svc.cfg.Dial = dialer(alice.me, bob, nil)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "photos", "a.jpg"), 3<<20, 1)
	writeFile(t, filepath.Join(src, "photos", "b.jpg"), 1000, 2)
	out, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "photos")})
	if err != nil {
		t.Fatal(err)
	}
	in := waitState(t, bob, "bob's offer", StateOffered)
	if in.ID != out.ID || in.Peer != alice.me.id || in.Files != 2 || in.Total != 3<<20+1000 || in.Names[0] != "photos" {
		t.Fatalf("offer seen as %+v, sent as %+v", in, out)
	}
	if _, err := bob.svc.Accept(in.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, "alice's transfer", StateDone)
	done := waitState(t, bob, "bob's transfer", StateDone)
	if done.Done != done.Total || done.FilesDone != 2 {
		t.Errorf("done %d of %d bytes, %d of 2 files", done.Done, done.Total, done.FilesDone)
	}
	// Along the way bob's side said which file was moving.
	bob.mu.Lock()
	var named bool
	for _, ev := range bob.events {
		named = named || ev.Current == "photos/a.jpg"
	}
	bob.mu.Unlock()
	if !named {
		t.Error("no progress named the file being received")
	}
	sameTree(t, filepath.Join(src, "photos"), filepath.Join(bob.dir, "photos"))
	if _, err := bob.svc.Accept(in.ID); !errors.Is(err, ErrNotPending) {
		t.Errorf("accepting twice: %v, want ErrNotPending", err)
	}
	if _, err := bob.svc.Decline("nope"); !errors.Is(err, ErrUnknownTransfer) {
		t.Errorf("declining an unknown id: %v", err)
	}
}

// TestServiceDecline: a declined offer ends as declined on both sides,
// and nothing is written.
func TestServiceDecline(t *testing.T) {
	bob := newSvcPeer(t, nil)
	alice := newSvcPeer(t, nil)
	alice.svc.cfg.Dial = dialer(alice.me, bob, nil)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 100, 1)
	if _, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "f")}); err != nil {
		t.Fatal(err)
	}
	in := waitState(t, bob, "offer", StateOffered)
	bob.svc.Decline(in.ID)
	waitState(t, alice, "alice's transfer", StateDeclined)
	sameTree(t, t.TempDir(), bob.dir)
}

// TestServiceAutoAcceptWithinLimit: offers from a listed peer within the
// size limit are accepted without asking; a larger one waits for a
// person.
func TestServiceAutoAcceptWithinLimit(t *testing.T) {
	alice := newSvcPeer(t, nil)
	bob := newSvcPeer(t, func(c *ServiceConfig) {
		c.AcceptFrom = func(p string) bool { return p == alice.me.id }
		c.AcceptMaxSize = 1 << 20
	})
	alice.svc.cfg.Dial = dialer(alice.me, bob, nil)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "small"), 1000, 1)
	writeFile(t, filepath.Join(src, "large"), 2<<20, 2)
	if _, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "small")}); err != nil {
		t.Fatal(err)
	}
	waitState(t, bob, "the small one", StateDone)
	if _, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "large")}); err != nil {
		t.Fatal(err)
	}
	waitState(t, bob, "the large one", StateOffered)
}

// TestServiceRetriesUntilBack: an offer to a peer that is away waits and
// goes out when it can be reached.
func TestServiceRetriesUntilBack(t *testing.T) {
	bob := newSvcPeer(t, func(c *ServiceConfig) { c.AcceptFrom = func(string) bool { return true } })
	alice := newSvcPeer(t, nil)
	var away atomic.Bool
	var tries atomic.Int32
	away.Store(true)
	dial := dialer(alice.me, bob, &away)
	alice.svc.cfg.Dial = func(ctx context.Context, id, proto string) (net.Conn, error) {
		tries.Add(1)
		return dial(ctx, id, proto)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 1<<20, 1)
	if _, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "f")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "three tries while away", 5*time.Second, func() bool { return tries.Load() >= 3 })
	if ts := alice.svc.Transfers(); ts[0].State != StateWaiting {
		t.Fatalf("while away: %s", ts[0].State)
	}
	away.Store(false)
	waitState(t, alice, "after the return", StateDone)
	sameTree(t, src, bob.dir)
}

// TestHostileOfferFlood: one peer cannot fill every place for offers
// waiting for a decision.
func TestHostileOfferFlood(t *testing.T) {
	bob := newSvcPeer(t, func(c *ServiceConfig) { c.MaxPending = 16; c.DecideTimeout = 5 * time.Second })
	mallory := newSvcPeer(t, nil)
	mallory.svc.cfg.Dial = dialer(mallory.me, bob, nil)
	src := t.TempDir()
	for i := range 4 {
		// Four files: the same paths again would continue the first offer.
		f := filepath.Join(src, fmt.Sprint("f", i))
		writeFile(t, f, 10, 1)
		if _, err := mallory.svc.Offer(bob.me.id, []string{f}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "two offers waiting and two refused", 10*time.Second, func() bool {
		offered, refused := 0, 0
		for _, tr := range mallory.svc.Transfers() {
			if tr.State == StateFailed && strings.Contains(tr.Error, "too many offers") {
				refused++
			}
		}
		for _, tr := range bob.svc.Transfers() {
			if tr.State == StateOffered {
				offered++
			}
		}
		return offered == 2 && refused == 2
	})
}

// TestServiceOutboxSurvivesRestart: an offer to a peer who is away is
// kept on disk; a new service (the sender restarted) takes it back under
// the same id and delivers it once the peer can be reached.
func TestServiceOutboxSurvivesRestart(t *testing.T) {
	bob := newSvcPeer(t, func(c *ServiceConfig) { c.AcceptFrom = func(string) bool { return true } })
	me := newPeer(t)
	outbox := filepath.Join(t.TempDir(), "outbox.json")
	// A sending service (SendOnly) neither makes nor needs a download
	// folder.
	noDir := filepath.Join(t.TempDir(), "never")
	mk := func(dial func(context.Context, string, string) (net.Conn, error)) *Service {
		cfg := DefaultServiceConfig(noDir)
		cfg.SendOnly = true
		cfg.Self, cfg.OutboxPath, cfg.Dial, cfg.RetryEvery = me.id, outbox, dial, 20*time.Millisecond
		cfg.Log = testutil.Logger(t, slog.LevelWarn)
		s, err := NewService(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var away atomic.Bool
	away.Store(true)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "d", "f"), 300<<10, 1)
	s1 := mk(dialer(me, bob, &away))
	tr, err := s1.Offer(bob.me.id, []string{filepath.Join(src, "d")})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()

	s2 := mk(dialer(me, bob, nil))
	defer s2.Close()
	ts := s2.Transfers()
	if len(ts) != 1 || ts[0].ID != tr.ID || ts[0].State != StateWaiting || ts[0].Total != 300<<10 {
		t.Fatalf("after the restart: %+v, want %s waiting", ts, tr.ID)
	}
	// The same offer made again (the command run again) continues the
	// kept one rather than offering the files twice.
	again, err := s2.Offer(bob.me.id, []string{filepath.Join(src, "d")})
	if err != nil || again.ID != tr.ID || len(s2.Transfers()) != 1 {
		t.Fatalf("offered again: %+v, %v; transfers %+v", again, err, s2.Transfers())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s2.Run(ctx)
	testutil.WaitFor(t, "the kept offer delivered", 10*time.Second, func() bool {
		t, _ := s2.Transfer(tr.ID)
		return t.State == StateDone
	})
	sameTree(t, src, bob.dir)
	// Done: nothing is kept for a third start.
	s3 := mk(nil)
	defer s3.Close()
	if ts := s3.Transfers(); len(ts) != 0 {
		t.Errorf("a finished offer was kept: %+v", ts)
	}
	if _, err := os.Stat(noDir); !os.IsNotExist(err) {
		t.Errorf("a sending service made its download folder: %v", err)
	}
}

// TestServiceSourceGoneFails: a file removed before it could be sent ends
// the transfer for good, rather than being tried forever.
func TestServiceSourceGoneFails(t *testing.T) {
	bob := newSvcPeer(t, nil)
	alice := newSvcPeer(t, nil)
	var away atomic.Bool
	away.Store(true)
	alice.svc.cfg.Dial = dialer(alice.me, bob, &away)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 10, 1)
	if _, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "f")}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "f"))
	away.Store(false)
	tr := waitState(t, alice, "the transfer", StateFailed)
	if !strings.Contains(tr.Error, "gone") {
		t.Errorf("error %q", tr.Error)
	}
}

// slowConn paces writes, so a test can act part way through a transfer.
type slowConn struct{ net.Conn }

func (c slowConn) Write(p []byte) (int, error) {
	time.Sleep(300 * time.Microsecond)
	return c.Conn.Write(p)
}

// TestServiceCutResumes: Cut gives up the streams with a peer whose node
// was lost (an unplug), from the recipient's side and then from the
// sender's; each time the transfer waits, resumes from what verified once
// the peer can be reached, and the file arrives whole with under 5 %
// sent twice.
func TestServiceCutResumes(t *testing.T) {
	bob := newSvcPeer(t, func(c *ServiceConfig) { c.AcceptFrom = func(string) bool { return true } })
	alice := newSvcPeer(t, nil)
	var away atomic.Bool
	alice.svc.cfg.Dial = func(ctx context.Context, id, proto string) (net.Conn, error) {
		if away.Load() {
			return nil, errors.New("peer offline")
		}
		raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", bob.ln.Addr().String())
		if err != nil {
			return nil, err
		}
		return tls.Client(slowConn{raw}, alice.me.tlsConfig()), nil
	}
	const size = 32 << 20
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), size, 3)
	tr, err := alice.svc.Offer(bob.me.id, []string{filepath.Join(src, "f")})
	if err != nil {
		t.Fatal(err)
	}
	cutAt := func(who *svcPeer, peer string, at int64) {
		t.Helper()
		testutil.WaitFor(t, fmt.Sprint("past ", at), 20*time.Second, func() bool {
			ts := who.svc.Transfers()
			return len(ts) == 1 && ts[0].Done >= at
		})
		away.Store(true)
		who.svc.Cut(peer)
		testutil.WaitFor(t, "alice's transfer waits", 10*time.Second, func() bool {
			got, _ := alice.svc.Transfer(tr.ID)
			return got.State == StateWaiting
		})
		if got, _ := alice.svc.Transfer(tr.ID); got.Done >= size {
			t.Fatalf("cut after the end: %+v", got)
		}
		away.Store(false)
	}
	cutAt(bob, alice.me.id, 8<<20)
	cutAt(alice, bob.me.id, 20<<20)
	got := waitState(t, alice, "the transfer", StateDone)
	sameTree(t, src, bob.dir)
	if got.Sent < size || (got.Sent-size)*20 >= size {
		t.Errorf("sent %d bytes for %d: want at least the file and under 5 %% more", got.Sent, size)
	}
	t.Logf("sent %d bytes for %d after two cuts", got.Sent, size)
}
