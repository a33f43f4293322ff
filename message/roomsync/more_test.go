package roomsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/message"
)

// recorder is a Stream that keeps every byte read from and written to it.
type recorder struct {
	message.Stream
	mu      sync.Mutex // guards the buffers
	in, out bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Stream.Read(p)
	r.mu.Lock()
	r.in.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.Stream.Write(p)
	r.mu.Lock()
	r.out.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

// doc.go's example is what a real pull between alice and bob puts on the
// stream: the same frames of the same envelopes, byte for byte, built by
// the encoders docExample uses.
func TestDocExampleIsWhatTravels(t *testing.T) {
	n := newTestNet()
	aliceID, bobID := seededIdentity(t, 1), seededIdentity(t, 2)
	alice := newPeerAs(t, n, aliceID, nil, nil)
	var rec *recorder
	bob := newPeerAs(t, n, bobID, func(c *Config) {
		dial := c.Dial
		c.Dial = func(ctx context.Context, peer, proto string) (message.Stream, error) {
			st, err := dial(ctx, peer, proto)
			if err != nil {
				return nil, err
			}
			rec = &recorder{Stream: st}
			return rec, nil
		}
	}, nil)
	join := func(who identity, id string, wall int64) []byte {
		env := &message.Envelope{ID: id, AuthorName: "x", Conversation: "#general", Seq: 1, Kind: message.KindJoin,
			Time: message.Timestamp{Wall: wall}}
		b, err := message.Seal(env, who.key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hi := &message.Envelope{ID: "0123456789abcdef0123456789abcd02", AuthorName: "alice", Conversation: "#general", Seq: 2,
		Time: message.Timestamp{Wall: 1_700_000_120_000_000_000}, Kind: message.KindText, Body: "hi all"}
	hiSealed, err := message.Seal(hi, aliceID.key)
	if err != nil {
		t.Fatal(err)
	}
	aliceJoin := join(aliceID, "0123456789abcdef0123456789abcd01", 1_700_000_060_000_000_000)
	alice.src.put("#general", aliceID.id, [][]byte{aliceJoin, hiSealed})
	bob.src.put("#general", aliceID.id, [][]byte{aliceJoin})
	bob.src.put("#general", bobID.id, [][]byte{join(bobID, "0123456789abcdef0123456789abcd03", 1_700_000_090_000_000_000)})

	if _, err := bob.s.Pull(ctxT(t), aliceID.id, "#general", bob.src.vector("#general"), bob.src); err != nil {
		t.Fatal(err)
	}
	wantOut := frames(appendFrame(nil, FramePull, appendPull(nil, "#general", Vector{aliceID.id: 1, bobID.id: 1})),
		appendFrame(nil, FrameClose, []byte("done")))
	wantIn := frames(headF(aliceID.id, 1, 2), pageF(hiSealed), doneF)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !bytes.Equal(rec.out.Bytes(), wantOut) {
		t.Fatalf("bob wrote\n%x\nwant\n%x", rec.out.Bytes(), wantOut)
	}
	if !bytes.Equal(rec.in.Bytes(), wantIn) {
		t.Fatalf("bob read\n%x\nwant\n%x", rec.in.Bytes(), wantIn)
	}
	alice.src.locked(func() {
		if len(alice.src.aheads) != 1 || !slices.Equal(alice.src.aheads[0].authors, []string{bobID.id}) {
			t.Errorf("alice was told %+v", alice.src.aheads)
		}
	})
}

// failingSource fails where told to.
type failingSource struct {
	*memSource
	headsErr error
	pageErr  error
	pageOK   int // Page calls that succeed before pageErr

	mu    sync.Mutex // guards calls
	calls int        // Page calls so far
}

func (f *failingSource) Heads(ctx context.Context, room string) (Vector, error) {
	if f.headsErr != nil {
		return nil, f.headsErr
	}
	return f.memSource.Heads(ctx, room)
}

func (f *failingSource) Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls > f.pageOK
	f.mu.Unlock()
	if fail && f.pageErr != nil {
		return nil, f.pageErr
	}
	return f.memSource.Page(ctx, room, author, after, limit)
}

// A server that cannot read its store refuses (code 3) without saying
// more; what the client took before stays, and is a prefix. A server
// without a Source serves nothing.
func TestSourceFailures(t *testing.T) {
	h := newHistory(t, "#general", []int{40})
	author := h.authors[0].id
	holding := func(k int) *memSource {
		m := newMemSource()
		m.put(h.room, author, h.events[author][:k])
		return m
	}
	locked := errors.New("database is locked")
	n := newTestNet()
	client := newPeer(t, n, nil, nil)
	for _, tt := range []struct {
		name  string
		src   Source
		taken uint64
	}{
		{"heads fail", &failingSource{memSource: holding(40), headsErr: locked}, 0},
		{"a page fails", &failingSource{memSource: holding(40), pageErr: locked, pageOK: 2}, 20},
		{"pages run short of the heads", &shortHeads{&failingSource{memSource: holding(30)}, 40}, 30},
		{"no source", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			server := newPeer(t, n, func(c *Config) { c.Source, c.PageEvents = tt.src, 10 }, nil)
			sink := newMemSource()
			_, err := client.s.Pull(ctxT(t), server.id.id, h.room, nil, sink)
			if !errors.Is(err, ErrRefused) || strings.Contains(err.Error(), "locked") {
				t.Fatalf("Pull = %v, want ErrRefused without the server's internals", err)
			}
			if got := sink.vector(h.room)[author]; got != tt.taken {
				t.Fatalf("client took %d events, want %d", got, tt.taken)
			}
		})
	}
}

// Envelopes of every size travel, a large one alone in its PAGE when it
// exceeds PageBytes.
func TestPullLargeEvents(t *testing.T) {
	a := seededIdentity(t, 1)
	var evs [][]byte
	for seq := uint64(1); seq <= 6; seq++ {
		body := "small"
		if seq%2 == 0 {
			body = strings.Repeat("L", message.MaxText)
		}
		evs = append(evs, sealEvent(t, a, "#big", seq, body))
	}
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.PageBytes = 1000 }, nil)
	client := newPeer(t, n, nil, nil)
	server.src.put("#big", a.id, evs)
	st, err := client.s.Pull(ctxT(t), server.id.id, "#big", nil, client.src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 6 || st.Pages != 6 {
		t.Fatalf("stats %+v, want 6 events in 6 pages", st)
	}
	sameEvents(t, "client", client.src.events("#big"), server.src.events("#big"))
}

// Pull refuses bad arguments before dialling.
func TestPullRefusesBadArguments(t *testing.T) {
	s := New(Config{Dial: func(context.Context, string, string) (message.Stream, error) {
		t.Fatal("dialled")
		return nil, nil
	}})
	defer s.Close()
	// (A vector over MaxVectorLen is not refused but cut to the authors
	// held most of: TestHostileKeyFloodDoesNotStopCatchUp.)
	for _, tt := range []struct {
		name string
		room string
		have Vector
		want error
	}{
		{"bad room", "general", nil, message.ErrMalformed},
		{"bad author", "#general", Vector{"bob": 1}, message.ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Pull(ctxT(t), "peer", tt.room, tt.have, newMemSource()); !errors.Is(err, tt.want) {
				t.Fatalf("Pull = %v, want %v", err, tt.want)
			}
		})
	}
}

// The limiter refills at its rate and forgets idle peers, so that a flood
// of peer ids does not grow it without bound.
func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(2, 3, func() time.Time { return now })
	for i := range 3 {
		if !l.allow("a") {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.allow("a") {
		t.Fatal("request beyond the burst allowed")
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	if !l.allow("a") || l.allow("a") {
		t.Fatal("refill is not one token per half second")
	}
	for i := range 3 * maxPeers {
		l.allow(fmt.Sprint("peer ", i))
	}
	if l.k.Len() > maxPeers {
		t.Fatalf("%d buckets kept, limit %d", l.k.Len(), maxPeers)
	}
}

// HandleStream after Close closes the stream at once.
func TestHandleStreamAfterClose(t *testing.T) {
	n := newTestNet()
	server := newPeer(t, n, nil, nil)
	server.s.Close()
	st := rawClient(t, server)
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ReadFrame(st); err == nil {
		t.Fatal("a closed Syncer answered")
	}
}

// shortHeads claims n events of every author, more than its Source can
// page.
type shortHeads struct {
	*failingSource
	n uint64
}

func (s *shortHeads) Heads(ctx context.Context, room string) (Vector, error) {
	v, err := s.failingSource.Heads(ctx, room)
	for a := range v {
		v[a] = s.n
	}
	return v, err
}

// blockingSink waits in Accept until its context ends.
type blockingSink struct{ entered chan struct{} }

func (b blockingSink) Accept(ctx context.Context, from, room string, envs []*message.Envelope) error {
	close(b.entered)
	<-ctx.Done()
	return ctx.Err()
}

// Close ends the context of a Sink's Accept in progress, and the Pull
// returns ErrClosed.
func TestCloseEndsAccept(t *testing.T) {
	n := newTestNet()
	server, client := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	h := newHistory(t, "#general", []int{3})
	h.give(server.src, map[string]int{h.authors[0].id: 3})
	sink := blockingSink{entered: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := client.s.Pull(context.Background(), server.id.id, h.room, nil, sink)
		errc <- err
	}()
	<-sink.entered
	client.s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Pull = %v, want ErrClosed", err)
	}
}

// blockingHeads holds every Heads call until released.
type blockingHeads struct {
	*memSource
	in      chan struct{} // receives once per Heads call entered (buffered: never blocks here)
	release chan struct{} // closed to let them go on
}

func (b *blockingHeads) Heads(ctx context.Context, room string) (Vector, error) {
	b.in <- struct{}{}
	<-b.release
	return b.memSource.Heads(ctx, room)
}

// A peer's requests beyond MaxConcurrent at once are refused while the
// others run, and served again once they have ended; another peer is
// not held back.
func TestConcurrentRequestsLimited(t *testing.T) {
	src := &blockingHeads{memSource: newMemSource(), in: make(chan struct{}, 16), release: make(chan struct{})}
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.Source, c.MaxConcurrent = src, 2 }, nil)
	client, other := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := client.s.Pull(ctxT(t), server.id.id, "#general", nil, client.src)
			errc <- err
		}()
	}
	<-src.in
	<-src.in
	_, err := client.s.Pull(ctxT(t), server.id.id, "#general", nil, client.src)
	if !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "at once") {
		t.Fatalf("third concurrent pull = %v, want ErrRateLimited", err)
	}
	otherErr := make(chan error, 1)
	go func() {
		_, err := other.s.Pull(ctxT(t), server.id.id, "#general", nil, other.src)
		otherErr <- err
	}()
	close(src.release)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-otherErr; err != nil {
		t.Fatalf("another peer: %v", err)
	}
	if _, err := client.s.Pull(ctxT(t), server.id.id, "#general", nil, client.src); err != nil {
		t.Fatalf("after the others ended: %v", err)
	}
}
