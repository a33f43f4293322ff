package roomsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"lanchat/internal/ratelimit"
	"lanchat/message"
)

// ALPN is the protocol name of sync streams; mesh routes incoming streams
// with it to HandleStream and Config.Dial asks for it.
const ALPN = "lanchat/sync/1"

// Errors callers act on, matched with errors.Is.
var (
	// ErrRefused means the peer did not serve the request: its Source
	// refused it (Authorize), it could not read its store, or the request
	// was rate limited (then ErrRateLimited too). The peer's reason
	// follows in the error text.
	ErrRefused = errors.New("request refused")
	// ErrRateLimited means the peer refused the request because this node
	// asked too often; it wraps ErrRefused too. Try again later.
	ErrRateLimited = errors.New("rate limited")
	// ErrInvalid means the peer broke the protocol: a malformed or
	// oversize frame, or an envelope that failed its checks (signature,
	// room, author, seq). The error names the peer, and wraps the
	// message sentinel of the cause when there is one
	// (message.ErrBadSignature, message.ErrMalformed, message.ErrTooLarge).
	ErrInvalid = errors.New("invalid answer")
	// ErrClosed is returned by a Syncer after Close.
	ErrClosed = errors.New("room sync closed")

	errIdle  = errors.New("idle")         // no frame came in time
	errWrite = errors.New("write failed") // the stream cannot be written
)

// Source is what the server side reads through: the chat service
// implements it over its store. Its methods may be called concurrently,
// from the goroutines of different streams.
type Source interface {
	// Authorize is asked before serving peer's request about room; nil
	// serves, an error's text is the refusal sent back.
	Authorize(peer, room string) error
	// Heads is this node's vector for room. It is asked once per request,
	// so its cost should grow with the room's authors, not its events.
	Heads(ctx context.Context, room string) (Vector, error)
	// Page returns up to limit sealed envelopes by author in room with
	// seq > after, ascending and contiguous. A Source that pruned the
	// author's older events starts at the first it holds (the author's
	// witness), which may be above after+1.
	Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error)
	// Memberships returns this node's own latest membership event
	// (room.join or room.leave, sealed) of every room it has ever joined.
	// It answers INDEX requests, which any verified peer may make.
	Memberships(ctx context.Context) ([][]byte, error)
	// Ahead tells the server that peer holds more of these authors'
	// events in room than it does, so it can pull from peer. It is called
	// on the serving goroutine once the events have been sent and before
	// the DONE that ends the answer (so it has been called when the
	// peer's Pull returns): it should queue the work and return.
	Ahead(peer, room string, authors []string)
}

// StateSource is a Source whose rooms may have a retention: State is
// room's retention events (sealed, at most MaxState, in the room's
// order), which a PULL answer carries first so that the client can
// check the skips over pruned events that follow.
type StateSource interface {
	State(ctx context.Context, room string) ([][]byte, error)
}

// Sink is what the client side stores through.
type Sink interface {
	// Accept gets one page, already opened and checked (signature via
	// message.Verifier, Conversation == room, author as announced, seq
	// contiguous after what the client had or the previous page), in seq
	// order per author. It stores them before returning; an error ends
	// the pull. Its context ends with Pull's or when the Syncer closes.
	// The server waits meanwhile: an Accept that takes longer than the
	// server's FrameTimeout (30 s) may lose the stream. A page may hold
	// events the sink holds already: those of the authors left out of a
	// vector over MaxVectorLen (see Pull).
	//
	// Two exceptions to "contiguous": the room's retention events come
	// first, in one call, each of its own author and of any seq (a STATE
	// frame); and the first event after a HEAD may be above the next
	// expected, when the server pruned the author's older events. The
	// sink decides whether it may skip (it takes the jump only over
	// events older than the room's retention); refusing ends the pull.
	Accept(ctx context.Context, from, room string, envs []*message.Envelope) error
}

// Config configures a Syncer. Start from DefaultConfig.
type Config struct {
	// Dial opens an authenticated stream to peerID for protocol proto
	// (always ALPN). mesh's Dial fits. Pull and Index fail without it.
	Dial func(ctx context.Context, peerID, proto string) (message.Stream, error)
	// Source serves the requests of other peers. HandleStream refuses
	// every request without it.
	Source Source
	// Logger receives the Syncer's logs. Nil discards them.
	Logger *slog.Logger

	// PageEvents is how many envelopes the server asks Source.Page for at
	// a time, and so the most it holds in memory per stream.
	PageEvents int
	// PageBytes bounds a PAGE frame's payload (at most MaxPage): a
	// Source page larger than that goes out in several frames.
	PageBytes int
	// MaxAuthors is the most authors a client's vector may name; a
	// larger one ends the stream. At most MaxVectorLen.
	MaxAuthors int
	// MaxIndex is the most memberships Index takes from a peer.
	MaxIndex int
	// RequestRate is how many requests (PULL or INDEX) a peer may make a
	// second, on all its streams together, after a burst of RequestBurst;
	// requests beyond it are refused ("rate limited"), not served.
	RequestRate  float64
	RequestBurst int
	// MaxConcurrent is how many requests of one peer are answered at
	// once; more are refused ("rate limited") while they run, so that a
	// peer cannot make the server hold many pages at a time.
	MaxConcurrent int
	// DialTimeout bounds opening a stream.
	DialTimeout time.Duration
	// IdleTimeout closes a served stream on which no request has come
	// for this long.
	IdleTimeout time.Duration
	// ResponseTimeout is how long a client waits for the first byte of
	// each frame of an answer (the server may be reading its store).
	ResponseTimeout time.Duration
	// FrameTimeout is how long a frame may take to arrive completely
	// once its first byte has, and how long a frame may take to write.
	FrameTimeout time.Duration
}

// DefaultConfig returns a Config with the default limits and timeouts.
// The caller fills in Dial, Source and Logger.
func DefaultConfig() Config {
	return Config{
		PageEvents:      256,
		PageBytes:       MaxPage,
		MaxAuthors:      MaxVectorLen,
		MaxIndex:        4096,
		RequestRate:     4,
		RequestBurst:    64,
		MaxConcurrent:   8,
		DialTimeout:     5 * time.Second,
		IdleTimeout:     30 * time.Second,
		ResponseTimeout: 30 * time.Second,
		FrameTimeout:    30 * time.Second,
	}
}

// Stats describe one Pull: the events accepted, the PAGE frames they
// came in, and the bytes of frames read and written (TLS not counted).
type Stats struct {
	Events, Pages     int
	BytesIn, BytesOut int64
}

// Syncer serves and makes catch-up requests. New starts nothing: the
// server side runs in HandleStream, which mesh calls for every stream
// with ALPN; the client side in Pull and Index, on the caller's
// goroutine. Close ends both.
type Syncer struct {
	cfg    Config
	log    *slog.Logger
	verify *message.Verifier
	limit  *limiter

	ctx    context.Context // ends when Close is called; parent of every Source call and dial
	cancel context.CancelFunc

	wg   sync.WaitGroup // counts HandleStream, Pull and Index calls
	done chan struct{}  // closed when Close has finished

	mu      sync.Mutex                  // guards the fields below
	closed  bool                        // set by Close; nothing new starts after it
	streams map[message.Stream]struct{} // open streams, served or pulling
	busy    map[string]int              // by peer id: its requests being answered
}

// New returns a Syncer for cfg, filling zero fields from DefaultConfig.
// It starts nothing.
func New(cfg Config) *Syncer {
	def := DefaultConfig()
	if cfg.PageEvents <= 0 {
		cfg.PageEvents = def.PageEvents
	}
	cfg.PageEvents = min(cfg.PageEvents, maxPageCount)
	if cfg.PageBytes <= 0 || cfg.PageBytes > MaxPage {
		cfg.PageBytes = MaxPage
	}
	if cfg.MaxAuthors <= 0 || cfg.MaxAuthors > MaxVectorLen {
		cfg.MaxAuthors = MaxVectorLen
	}
	if cfg.MaxIndex <= 0 {
		cfg.MaxIndex = def.MaxIndex
	}
	if cfg.RequestRate <= 0 {
		cfg.RequestRate = def.RequestRate
	}
	if cfg.RequestBurst <= 0 {
		cfg.RequestBurst = def.RequestBurst
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = def.MaxConcurrent
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = def.DialTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = def.ResponseTimeout
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = def.FrameTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Syncer{
		cfg:     cfg,
		log:     cfg.Logger,
		verify:  message.NewVerifier(),
		limit:   newLimiter(cfg.RequestRate, cfg.RequestBurst, time.Now),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		streams: make(map[message.Stream]struct{}),
		busy:    make(map[string]int),
	}
}

// enter counts one more of peer's requests as being answered, or reports
// false if MaxConcurrent are already. Every true must be followed by
// leave.
func (s *Syncer) enter(peer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[peer] >= s.cfg.MaxConcurrent {
		return false
	}
	s.busy[peer]++
	return true
}

func (s *Syncer) leave(peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[peer]--; s.busy[peer] <= 0 {
		delete(s.busy, peer)
	}
}

// begin counts a HandleStream, Pull or Index call in s.wg, or reports
// false after Close. Every true must be followed by s.wg.Done.
func (s *Syncer) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// register records st as open so that Close can close it, or reports
// false after Close. Every true must be followed by unregister.
func (s *Syncer) register(st message.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.streams[st] = struct{}{}
	return true
}

func (s *Syncer) unregister(st message.Stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
}

// Close closes every stream, waits until every HandleStream, Pull and
// Index call has returned, and makes later calls fail with ErrClosed. It
// is idempotent; every call waits.
func (s *Syncer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	streams := make([]message.Stream, 0, len(s.streams))
	for st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	s.cancel()
	for _, st := range streams {
		// Their owners see the deadline pass, then s.ctx ended, and close
		// them with a reason.
		st.SetDeadline(time.Now())
	}
	s.wg.Wait()
	close(s.done)
	return nil
}

// conn is one stream with its reader and byte counts. One goroutine
// uses it.
type conn struct {
	st      message.Stream
	br      *bufio.Reader
	cfg     *Config
	ctx     context.Context // the Syncer's: once it ends, nothing more is read or written
	in, out int64           // bytes of frames read and written
}

func newConn(ctx context.Context, st message.Stream, cfg *Config) *conn {
	return &conn{st: st, br: bufio.NewReaderSize(st, 64<<10), cfg: cfg, ctx: ctx}
}

// read reads the next frame: its first byte may take up to wait to come,
// the rest FrameTimeout.
func (c *conn) read(wait time.Duration) (Frame, error) {
	c.st.SetReadDeadline(time.Now().Add(wait))
	if c.ctx.Err() != nil {
		// Checked after the deadline is set: Close ends the context
		// before it makes the deadline pass.
		return Frame{}, ErrClosed
	}
	if _, err := c.br.Peek(1); err != nil {
		if isTimeout(err) {
			return Frame{}, fmt.Errorf("%w: nothing within %v", errIdle, wait)
		}
		return Frame{}, err
	}
	c.st.SetReadDeadline(time.Now().Add(c.cfg.FrameTimeout))
	if c.ctx.Err() != nil {
		return Frame{}, ErrClosed
	}
	f, err := ReadFrame(c.br)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if isTimeout(err) {
		return f, fmt.Errorf("frame not complete within %v: %w", c.cfg.FrameTimeout, err)
	}
	if err == nil {
		c.in += int64(FrameHeaderLen + len(f.Payload))
	}
	return f, err
}

// write writes whole frames within FrameTimeout.
func (c *conn) write(frames []byte) error {
	c.st.SetWriteDeadline(time.Now().Add(c.cfg.FrameTimeout))
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	n, err := c.st.Write(frames)
	c.out += int64(n)
	if err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// closeWith writes a CLOSE frame with reason (best effort, briefly) and
// closes the stream.
func (c *conn) closeWith(reason string) {
	if reason != "" {
		c.st.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, _ := c.st.Write(appendFrame(nil, FrameClose, []byte(clip(reason, MaxReason))))
		c.out += int64(n)
	}
	c.st.Close()
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// limiter is a token bucket per peer: rate tokens a second, at most
// burst. When it holds maxPeers buckets it forgets those that have
// refilled (and all, if none has), so a flood of peer ids cannot grow it.
type limiter struct{ k *ratelimit.Keyed[string] }

// maxPeers bounds the buckets a limiter keeps.
const maxPeers = 4096

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{k: ratelimit.New[string](rate, float64(burst), maxPeers, ratelimit.Reset, now)}
}

// allow takes a token from peer's bucket, or reports false if it is empty.
func (l *limiter) allow(peer string) bool { return l.k.Allow(peer) }
