package message

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/mesh"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSendAck(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	env, err := a.svc.Send(ctxT(t), b.id.id, KindText, "hello, b")
	if err != nil {
		t.Fatal(err)
	}
	got := b.delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d messages, want 1", len(got))
	}
	m := got[0]
	if m.ID != env.ID || m.Author != a.id.id || m.To != b.id.id || m.Body != "hello, b" ||
		m.Kind != KindText || m.AuthorName != "peer "+mesh.ShortID(a.id.id) || m.Time != env.Time {
		t.Fatalf("delivered %+v, sent %+v", m, env)
	}
	// The receiver's clock now runs after the message.
	if ts := b.svc.cfg.Clock.Now(); !env.Time.Less(ts) {
		t.Fatalf("receiver clock %v not after the message's %v", ts, env.Time)
	}
	// And back, on a stream of its own.
	if _, err := b.svc.Send(ctxT(t), a.id.id, KindText, "hi a"); err != nil {
		t.Fatal(err)
	}
	if len(a.delivered()) != 1 {
		t.Fatal("reply not delivered")
	}
}

func TestSendPipelinesOnOneStream(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	const sends = 64
	var wg sync.WaitGroup
	errs := make(chan error, sends)
	for i := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.svc.Send(ctxT(t), b.id.id, KindText, fmt.Sprint("message ", i))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(b.delivered()); got != sends {
		t.Fatalf("delivered %d, want %d", got, sends)
	}
	if d, acc := a.dials.Load(), b.accepted.Load(); d != 1 || acc != 1 {
		t.Fatalf("%d dials and %d accepted streams, want one of each", d, acc)
	}
}

func TestSendToSelfDeliversLocally(t *testing.T) {
	n := newTestNet()
	a := newPeer(t, n, nil)
	if _, err := a.svc.Send(ctxT(t), a.id.id, KindText, "note to self"); err != nil {
		t.Fatal(err)
	}
	if len(a.delivered()) != 1 || a.dials.Load() != 0 {
		t.Fatalf("delivered %d with %d dials, want 1 delivered locally", len(a.delivered()), a.dials.Load())
	}
}

func TestDuplicateResendShownOnce(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	env, err := a.svc.Send(ctxT(t), b.id.id, KindText, "once")
	if err != nil {
		t.Fatal(err)
	}
	// Re-send on the same stream, as an outbox would after a lost ack ...
	if err := a.svc.SendEnvelope(ctxT(t), env.Sealed(), env); err != nil {
		t.Fatalf("resend: %v", err)
	}
	// ... and on a new stream, from the stored bytes alone.
	b.cutAll()
	waitFor(t, "the stream to be dropped", func() bool {
		a.svc.mu.Lock()
		defer a.svc.mu.Unlock()
		return len(a.svc.out) == 0
	})
	if err := a.svc.SendEnvelope(ctxT(t), env.Sealed(), nil); err != nil {
		t.Fatalf("resend on a new stream: %v", err)
	}
	if got := b.countDelivered(env.ID); got != 1 {
		t.Fatalf("delivered %d times, want once", got)
	}
	if a.dials.Load() != 2 {
		t.Fatalf("%d dials, want 2", a.dials.Load())
	}
}

func TestDeliverErrorRejects(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	var fail atomic.Bool
	fail.Store(true)
	b.setDeliver(func(ctx context.Context, env *Envelope) error {
		if fail.Load() {
			return errors.New("disk full")
		}
		return nil
	})
	env, err := a.svc.Send(ctxT(t), b.id.id, KindText, "hi")
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Send = %v, want ErrRejected with the reason", err)
	}
	if env == nil || env.Sealed() == nil {
		t.Fatal("Send returned no envelope to keep for a retry")
	}
	// A rejected message is not remembered: the retry is delivered.
	fail.Store(false)
	if err := a.svc.SendEnvelope(ctxT(t), env.Sealed(), env); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if b.countDelivered(env.ID) != 1 {
		t.Fatal("retry not delivered")
	}
}

func TestOversizedBodyRefusedBeforeSending(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	_, err := a.svc.Send(ctxT(t), b.id.id, KindText, strings.Repeat("x", MaxText+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Send = %v, want ErrTooLarge", err)
	}
	if a.dials.Load() != 0 {
		t.Fatal("dialled for a message that cannot be sent")
	}
	if _, err := a.svc.Send(ctxT(t), b.id.id, KindText, strings.Repeat("x", MaxText)); err != nil {
		t.Fatalf("a body of exactly MaxText: %v", err)
	}
}

func TestPeerGoneUnreachable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, a, b *testPeer)
	}{
		{"never connected", func(t *testing.T, a, b *testPeer) { b.stop() }},
		{"gone after a message", func(t *testing.T, a, b *testPeer) {
			if _, err := a.svc.Send(ctxT(t), b.id.id, KindText, "first"); err != nil {
				t.Fatal(err)
			}
			b.stop()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNet()
			a, b := newPeer(t, n, nil), newPeer(t, n, nil)
			tt.setup(t, a, b)
			start := time.Now()
			_, err := a.svc.Send(ctxT(t), b.id.id, KindText, "anyone there?")
			if !errors.Is(err, ErrPeerUnreachable) {
				t.Fatalf("Send = %v, want ErrPeerUnreachable", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %v to notice", d)
			}
		})
	}
}

func TestUnknownPeerUnreachable(t *testing.T) {
	n := newTestNet()
	a := newPeer(t, n, nil)
	_, nobody := testKey(9)
	if _, err := a.svc.Send(ctxT(t), nobody, KindText, "hello?"); !errors.Is(err, ErrPeerUnreachable) {
		t.Fatalf("Send = %v, want ErrPeerUnreachable", err)
	}
}

// The stream is cut after the receiver delivered but before its ack left:
// the sender redials, resends, and the receiver acknowledges the duplicate
// without delivering it again.
func TestStreamCutMidSendRedialsDeliversOnce(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	var cut atomic.Bool
	b.setDeliver(func(ctx context.Context, env *Envelope) error {
		if !cut.Swap(true) {
			b.cutAll() // the ack for this message will not get out
		}
		return nil
	})
	env, err := a.svc.Send(ctxT(t), b.id.id, KindText, "through the cut")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.countDelivered(env.ID); got != 1 {
		t.Fatalf("delivered %d times, want exactly once", got)
	}
	if d := a.dials.Load(); d != 2 {
		t.Fatalf("%d dials, want 2 (the first and one redial)", d)
	}
}

// A resend arriving on a second stream while the first stream's Deliver of
// the same message is still running waits for it, instead of delivering
// it twice.
func TestConcurrentDuplicateDeliveredOnce(t *testing.T) {
	n := newTestNet()
	b := newPeer(t, n, nil)
	a := newIdentity(t)
	release := make(chan struct{})
	var calls atomic.Int32
	b.setDeliver(func(ctx context.Context, env *Envelope) error {
		calls.Add(1)
		<-release
		return nil
	})
	env := Envelope{To: b.id.id, Kind: KindText, Body: "twice at once"}
	sealed, err := Seal(&env, a.key)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := rawClient(t, a, b), rawClient(t, a, b)
	frame := AppendFrame(nil, FrameMsg, sealed)
	c1.Write(frame)
	waitFor(t, "the first delivery to start", func() bool { return calls.Load() == 1 })
	c2.Write(frame)
	// The second stream has read the resend and is waiting on the first
	// delivery, not delivering it again.
	waitFor(t, "the resend to wait for the first delivery", func() bool { return b.svc.seen.busyWaits() == 1 })
	if c := calls.Load(); c != 1 {
		t.Fatalf("the resend was delivered while the first delivery ran (%d calls)", c)
	}
	close(release)
	for i, c := range []io.Reader{c1, c2} {
		f, err := ReadFrame(c)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		ack, err := ParseAck(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		want := []AckStatus{AckOK, AckDuplicate}[i]
		if ack.Status != want {
			t.Fatalf("stream %d: ack %v, want %v", i, ack.Status, want)
		}
	}
	if calls.Load() != 1 || b.countDelivered(env.ID) != 1 {
		t.Fatalf("Deliver called %d times", calls.Load())
	}
}

func TestRefusedEnvelopes(t *testing.T) {
	n := newTestNet()
	b := newPeer(t, n, nil)
	a, c := newIdentity(t), newIdentity(t)
	seal := func(key identity, env Envelope) []byte {
		sealed, err := Seal(&env, key.key)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	tamper := func(p []byte) []byte { p[len(p)-70] ^= 1; return p }
	tests := []struct {
		name   string
		from   identity
		sealed []byte
		reason string
	}{
		{"author is not the stream's peer", a, seal(c, Envelope{To: b.id.id, Kind: KindText, Body: "relayed"}), "not the sending peer"},
		{"addressed to someone else", a, seal(a, Envelope{To: c.id, Kind: KindText, Body: "misrouted"}), "not to this peer"},
		{"room event by another author", a, seal(c, Envelope{Conversation: "#general", Seq: 1, Kind: KindText, Body: "relayed"}), "not the sending peer"},
		{"bad signature", a, tamper(seal(a, Envelope{To: b.id.id, Kind: KindText, Body: "tampered"})), "bad signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawClient(t, tt.from, b)
			conn.Write(AppendFrame(nil, FrameMsg, tt.sealed))
			f, err := ReadFrame(conn)
			if err != nil {
				t.Fatal(err)
			}
			ack, err := ParseAck(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if ack.Status != AckRejected || !strings.Contains(ack.Reason, tt.reason) {
				t.Fatalf("ack %v %q, want rejected with %q", ack.Status, ack.Reason, tt.reason)
			}
		})
	}
	if len(b.delivered()) != 0 {
		t.Fatal("a refused envelope was delivered")
	}
}

// Hostile or broken frames close that stream, with a reason, and the
// service goes on serving others.
func TestHostileFramesCloseOnlyThatStream(t *testing.T) {
	tests := []struct {
		name string
		send []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"unknown frame type", append(header("LM", 0x42, 1), 0)},
		{"length 4 GiB", header("LM", byte(FrameMsg), 0xffffffff)},
		{"ack from the client", AppendFrame(nil, FrameAck, AppendAck(nil, Ack{Status: AckOK}))},
		{"msg without an id", AppendFrame(nil, FrameMsg, []byte("hello"))},
		{"truncated frame then EOF", header("LM", byte(FrameMsg), 100)},
	}
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	evil := newIdentity(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawClient(t, evil, b)
			conn.Write(tt.send)
			if tt.name == "truncated frame then EOF" {
				conn.CloseWrite()
			}
			// The service answers with at most a CLOSE frame, then EOF.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(conn)
			for {
				f, err := ReadFrame(br)
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isConnReset(err) {
						break
					}
					t.Fatalf("want the stream closed, got %v", err)
				}
				if f.Type != FrameClose {
					t.Fatalf("got a %v frame, want CLOSE or EOF", f.Type)
				}
				t.Logf("closed with reason %q", f.Payload)
			}
			if _, err := a.svc.Send(ctxT(t), b.id.id, KindText, "still there?"); err != nil {
				t.Fatalf("after the hostile stream: %v", err)
			}
		})
	}
}

func isConnReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// A peer that starts a frame and stops is cut off after FrameTimeout, and
// one that sends nothing after IdleTimeout.
func TestSlowPeersTimeOut(t *testing.T) {
	tests := []struct {
		name string
		send []byte
	}{
		{"half a header", []byte("LM\x01")},
		{"header without payload", header("LM", byte(FrameMsg), 100)},
		{"nothing at all", nil},
	}
	n := newTestNet()
	b := newPeer(t, n, func(c *Config) {
		c.FrameTimeout = 100 * time.Millisecond
		c.IdleTimeout = 300 * time.Millisecond
	})
	slow := newIdentity(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawClient(t, slow, b)
			conn.Write(tt.send)
			start := time.Now()
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, err := ReadFrame(conn); err != nil {
					if isTimeout(err) {
						t.Fatal("the service kept the stream open")
					}
					break
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("closed after %v", d)
			}
		})
	}
}

// An outgoing stream with nothing to do closes after IdleTimeout, and the
// next send dials again; a stream waiting for an ack is not idle.
func TestIdleOutgoingStreamCloses(t *testing.T) {
	n := newTestNet()
	short := func(c *Config) { c.IdleTimeout = 150 * time.Millisecond }
	a, b := newPeer(t, n, short), newPeer(t, n, nil)
	release := make(chan struct{})
	var slow atomic.Bool
	b.setDeliver(func(ctx context.Context, env *Envelope) error {
		if slow.Load() {
			<-release
		}
		return nil
	})
	if _, err := a.svc.Send(ctxT(t), b.id.id, KindText, "one"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle stream to close", func() bool {
		a.svc.mu.Lock()
		defer a.svc.mu.Unlock()
		return len(a.svc.out) == 0
	})
	// Waiting three idle periods for an ack does not close the stream.
	slow.Store(true)
	go func() { time.Sleep(500 * time.Millisecond); close(release) }()
	if _, err := a.svc.Send(ctxT(t), b.id.id, KindText, "two"); err != nil {
		t.Fatal(err)
	}
	if d := a.dials.Load(); d != 2 {
		t.Fatalf("%d dials, want 2", d)
	}
}

// One peer's slow Deliver does not hold up another peer's messages.
func TestSlowDeliverDoesNotStallOtherPeers(t *testing.T) {
	n := newTestNet()
	a, b, c := newPeer(t, n, nil), newPeer(t, n, nil), newPeer(t, n, nil)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	c.setDeliver(func(ctx context.Context, env *Envelope) error {
		if env.Author == a.id.id {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	go a.svc.Send(context.Background(), c.id.id, KindText, "slow")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := b.svc.Send(ctx, c.id.id, KindText, "fast"); err != nil {
		t.Fatalf("a slow delivery from another peer held this one up: %v", err)
	}
}

func TestAckTimeoutUnreachable(t *testing.T) {
	n := newTestNet()
	a := newPeer(t, n, func(c *Config) { c.AckTimeout = 200 * time.Millisecond })
	b := newPeer(t, n, nil)
	b.setDeliver(func(ctx context.Context, env *Envelope) error {
		<-ctx.Done() // never answers while the service runs
		return ctx.Err()
	})
	start := time.Now()
	_, err := a.svc.Send(ctxT(t), b.id.id, KindText, "hello?")
	if !errors.Is(err, ErrPeerUnreachable) {
		t.Fatalf("Send = %v, want ErrPeerUnreachable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}

func TestSendContextCancelled(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	b.setDeliver(func(ctx context.Context, env *Envelope) error { <-ctx.Done(); return ctx.Err() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.svc.Send(ctx, b.id.id, KindText, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want the context's error", err)
	}
}

func TestCloseWaitsForGoroutines(t *testing.T) {
	n := newTestNet()
	a, b := newPeer(t, n, nil), newPeer(t, n, nil)
	var inDeliver, returned atomic.Bool
	b.setDeliver(func(ctx context.Context, env *Envelope) error {
		inDeliver.Store(true)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a store finishing its write
		returned.Store(true)
		return ctx.Err()
	})
	sendErr := make(chan error, 1)
	go func() {
		_, err := a.svc.Send(context.Background(), b.id.id, KindText, "x")
		sendErr <- err
	}()
	waitFor(t, "Deliver to start", inDeliver.Load)
	if err := b.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Close returned while Deliver was still running")
	}
	if err := b.svc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-sendErr; !errors.Is(err, ErrPeerUnreachable) && !errors.Is(err, ErrRejected) {
		t.Fatalf("Send to a closing peer = %v", err)
	}
	a.svc.Close()
	if _, err := a.svc.Send(ctxT(t), b.id.id, KindText, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	// A stream arriving after Close is closed at once.
	c1, c2 := newPipeStreams(b.id.id)
	a.svc.HandleStream(c1)
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream handed in after Close is open")
	}
}

// Close during a dial ends the dial and waits for it.
func TestCloseDuringDial(t *testing.T) {
	n := newTestNet()
	var dialing atomic.Bool
	a := newPeer(t, n, func(c *Config) {
		c.Dial = func(ctx context.Context, peer, proto string) (Stream, error) {
			dialing.Store(true)
			<-ctx.Done()
			return nil, ctx.Err()
		}
	})
	_, to := testKey(2)
	sendErr := make(chan error, 1)
	go func() {
		_, err := a.svc.Send(context.Background(), to, KindText, "x")
		sendErr <- err
	}()
	waitFor(t, "the dial to start", dialing.Load)
	a.svc.Close()
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send = %v, want ErrClosed", err)
	}
}

// A room event (version 2, no recipient) sent by its author with
// SendEnvelopeTo reaches the peer's DeliverBatch, as any message does,
// and is acknowledged; a resend is a duplicate.
func TestRoomEventDelivered(t *testing.T) {
	n := newTestNet()
	var batches atomic.Int32
	a := newPeer(t, n, nil)
	b := newPeer(t, n, func(cfg *Config) {
		deliver := cfg.Deliver
		cfg.DeliverBatch = func(ctx context.Context, envs []*Envelope) []error {
			batches.Add(1)
			errs := make([]error, len(envs))
			for i, env := range envs {
				errs[i] = deliver(ctx, env)
			}
			return errs
		}
	})
	for seq := uint64(1); seq <= 3; seq++ {
		env := &Envelope{Conversation: "#general", Seq: seq, Kind: KindText, Body: fmt.Sprint("event ", seq)}
		if seq == 1 {
			env.Kind, env.Body = KindJoin, ""
		}
		sealed, err := Seal(env, a.id.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.svc.SendEnvelopeTo(ctxT(t), b.id.id, sealed, env); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if seq == 3 {
			// A resend, with the envelope to be opened from the bytes.
			if err := a.svc.SendEnvelopeTo(ctxT(t), b.id.id, sealed, nil); err != nil {
				t.Fatalf("resend: %v", err)
			}
		}
	}
	got := b.delivered()
	if len(got) != 3 || batches.Load() < 1 {
		t.Fatalf("delivered %d room events in %d batches, want 3", len(got), batches.Load())
	}
	for i, env := range got {
		if env.Conversation != "#general" || env.Seq != uint64(i+1) || env.To != "" || env.Author != a.id.id || env.Version() != EnvelopeV2 {
			t.Fatalf("delivered %+v", env)
		}
	}
	if got[0].Kind != KindJoin {
		t.Fatalf("first event of kind %q", got[0].Kind)
	}
}

// SendEnvelopeTo sends a direct message to its recipient only.
func TestSendEnvelopeToRefusesMisaddressed(t *testing.T) {
	n := newTestNet()
	a, b, c := newPeer(t, n, nil), newPeer(t, n, nil), newPeer(t, n, nil)
	env := &Envelope{To: c.id.id, Kind: KindText, Body: "for c"}
	sealed, err := Seal(env, a.id.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.svc.SendEnvelopeTo(ctxT(t), b.id.id, sealed, env); !errors.Is(err, ErrMalformed) {
		t.Fatalf("SendEnvelopeTo(wrong peer) = %v, want ErrMalformed", err)
	}
	if err := a.svc.SendEnvelopeTo(ctxT(t), c.id.id, sealed, env); err != nil {
		t.Fatal(err)
	}
	if len(b.delivered()) != 0 || len(c.delivered()) != 1 {
		t.Fatalf("b got %d, c got %d", len(b.delivered()), len(c.delivered()))
	}
}
