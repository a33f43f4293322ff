package message

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"lanchat/mesh"
)

// ALPN is the protocol name of message streams; mesh routes incoming
// streams with it to HandleStream and Config.Dial asks for it.
const ALPN = "lanchat/msg/1"

// Stream is an authenticated connection to one peer, as mesh provides it.
type Stream interface {
	net.Conn
	// PeerID is the verified id of the remote peer.
	PeerID() string
}

// Config configures a Service. Start from DefaultConfig.
type Config struct {
	// Self is our peer id. When empty it is derived from Key.
	Self string
	// Name returns our current display name, written into every envelope we
	// author. Nil writes no name.
	Name func() string
	// Key is our Ed25519 identity key; every envelope we author is signed
	// with it. Send fails without it.
	Key ed25519.PrivateKey
	// Dial opens an authenticated stream to peerID for protocol proto
	// (always ALPN). mesh's Dial fits. Send fails without it.
	Dial func(ctx context.Context, peerID, proto string) (Stream, error)
	// Deliver is called once per new message addressed to us, and per new
	// room event its author sent us (whether we are a member of its room
	// is Deliver's to decide: refuse it otherwise), after
	// de-duplication and checks and before the acknowledgement is sent, so
	// a store can make the message durable first. A non-nil error is sent
	// to the author as the reason of a rejection (it becomes ErrRejected on
	// their side); their next resend is offered to Deliver again. It runs
	// on the receiving stream's goroutine: other peers' streams are not
	// held up, but the same stream's next message is. The context ends when
	// the Service closes. Nil accepts every message and drops it.
	Deliver func(ctx context.Context, env *Envelope) error
	// DeliverBatch, if set, replaces Deliver: a receiving stream hands it
	// every new message it has read in one go (all the frames already
	// buffered, up to MaxRecvBatch), in arrival order, and acknowledges
	// envs[i] according to the i-th error (nil: stored). A store commits
	// such a batch in one transaction, which is what lets one stream carry
	// tens of thousands of durable messages a second.
	DeliverBatch func(ctx context.Context, envs []*Envelope) []error
	// Clock stamps the messages we write and observes those we receive.
	// Nil makes a Clock on time.Now.
	Clock *Clock
	// AckTimeout is how long Send waits for an acknowledgement after
	// writing; when it passes the stream is presumed dead and closed.
	AckTimeout time.Duration
	// DialTimeout bounds opening a stream.
	DialTimeout time.Duration
	// IdleTimeout closes a stream, outgoing or incoming, on which nothing
	// has travelled for this long.
	IdleTimeout time.Duration
	// FrameTimeout is how long a frame may take to arrive completely once
	// its first byte has, so a slow or half-open peer cannot hold a stream.
	FrameTimeout time.Duration
	// DedupSize is how many delivered message ids are remembered to
	// recognise resends (about 100 bytes of memory each).
	DedupSize int
	// Logger receives the service's logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the default timeouts and limits. The
// caller fills in Key, Dial, Deliver and Name.
func DefaultConfig() Config {
	return Config{
		AckTimeout:   5 * time.Second,
		DialTimeout:  5 * time.Second,
		IdleTimeout:  2 * time.Minute,
		FrameTimeout: 30 * time.Second,
		DedupSize:    100_000,
	}
}

// Service sends direct messages with acknowledgement and receives them with
// de-duplication. It keeps at most one outgoing stream per peer, shared by
// all concurrent sends to that peer (acknowledgements are matched by
// message id), and serves the incoming streams mesh hands to HandleStream.
//
// New starts nothing; streams are dialled on first use. Close ends it.
type Service struct {
	cfg  Config
	self string
	log  *slog.Logger
	seen *dedup
	// verify opens what the incoming streams receive, keeping the keys
	// of busy peers prepared.
	verify *Verifier

	ctx    context.Context // ends when Close is called; parent of dials and Deliver calls
	cancel context.CancelFunc

	wg   sync.WaitGroup // counts dial, outgoing reader and HandleStream goroutines
	done chan struct{}  // closed when Close has finished

	mu     sync.Mutex             // guards the fields below
	closed bool                   // set by Close; nothing new starts after it
	out    map[string]*outStream  // by peer id: the current outgoing stream, dialling or open
	in     map[*inStream]struct{} // incoming streams being served
}

// New returns a Service for cfg, filling zero fields from DefaultConfig.
// It starts nothing.
func New(cfg Config) *Service {
	def := DefaultConfig()
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = def.AckTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = def.DialTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = def.FrameTimeout
	}
	if cfg.DedupSize <= 0 {
		cfg.DedupSize = def.DedupSize
	}
	if cfg.Clock == nil {
		cfg.Clock = NewClock(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == nil {
		cfg.Name = func() string { return "" }
	}
	if cfg.Deliver == nil {
		cfg.Deliver = func(context.Context, *Envelope) error { return nil }
	}
	if cfg.DeliverBatch == nil {
		deliver := cfg.Deliver
		cfg.DeliverBatch = func(ctx context.Context, envs []*Envelope) []error {
			errs := make([]error, len(envs))
			for i, env := range envs {
				errs[i] = deliver(ctx, env)
			}
			return errs
		}
	}
	self := cfg.Self
	if self == "" && len(cfg.Key) == ed25519.PrivateKeySize {
		self = mesh.IDFromPublicKey(cfg.Key.Public().(ed25519.PublicKey))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg:    cfg,
		self:   self,
		log:    cfg.Logger,
		seen:   newDedup(cfg.DedupSize),
		verify: NewVerifier(),
		ctx:    ctx,
		cancel: cancel,
		out:    make(map[string]*outStream),
		in:     make(map[*inStream]struct{}),
		done:   make(chan struct{}),
	}
}

// Self returns our peer id.
func (s *Service) Self() string { return s.self }

// Send writes a message of kind with body to peer to, seals it, sends it
// and waits for the acknowledgement. A body over MaxText is refused with
// ErrTooLarge before anything is sent. Sending to ourselves delivers
// locally.
//
// The envelope is returned whenever it could be sealed, even with an
// error, so that an outbox can keep env.Sealed() and re-send it later with
// SendEnvelope. Errors: ErrPeerUnreachable (not known to have arrived),
// ErrRejected (the peer refused it, with its reason), ErrClosed, the
// context's error, or a sealing error (ErrTooLarge, ErrMalformed).
func (s *Service) Send(ctx context.Context, to, kind, body string) (*Envelope, error) {
	if len(body) > MaxText {
		return nil, fmt.Errorf("send: %w: body of %d bytes, limit %d", ErrTooLarge, len(body), MaxText)
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	env := &Envelope{
		Author:     s.self,
		AuthorName: clipName(s.cfg.Name()),
		To:         to,
		Time:       s.cfg.Clock.Now(),
		Kind:       kind,
		Body:       body,
	}
	sealed, err := Seal(env, s.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	if err := s.send(ctx, to, sealed, env, nil); err != nil {
		return env, err
	}
	return env, nil
}

// SendEnvelope re-sends an envelope sealed earlier (by Send, or kept by an
// outbox) to env.To and waits for the acknowledgement; a receiver that has
// it already acknowledges it as a duplicate, which counts as success. env
// must be the envelope of sealed (only its To and ID are used, nothing is
// re-verified), or nil, and then sealed is opened to find it. The errors
// are Send's.
func (s *Service) SendEnvelope(ctx context.Context, sealed []byte, env *Envelope) error {
	return s.SendInOrder(ctx, sealed, env, func(bool) {})
}

// SendInOrder is SendEnvelope for a queue: it calls written once, as soon
// as the message's frame has been handed to the stream (true) or the
// attempt has failed before that (false), and then waits for the
// acknowledgement as usual. A caller that starts the next message only
// after written keeps the queue's order on the wire while the
// acknowledgements are awaited together.
func (s *Service) SendInOrder(ctx context.Context, sealed []byte, env *Envelope, written func(sent bool)) error {
	var once sync.Once
	w := func(sent bool) { once.Do(func() { written(sent) }) }
	defer w(false)
	env, err := sendable(sealed, env)
	if err != nil {
		return err
	}
	return s.send(ctx, env.To, sealed, env, w)
}

// sendable checks that sealed can be sent, and returns its envelope: env,
// or sealed opened when env is nil.
func sendable(sealed []byte, env *Envelope) (*Envelope, error) {
	if len(sealed) > MaxEnvelope {
		return nil, fmt.Errorf("send: %w: envelope of %d bytes, limit %d", ErrTooLarge, len(sealed), MaxEnvelope)
	}
	if env == nil {
		var err error
		if env, err = Open(sealed); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
	}
	if _, ok := peekID(sealed); !ok {
		return nil, fmt.Errorf("send: %w: not a sealed envelope", ErrMalformed)
	}
	return env, nil
}

// SendEnvelopeTo sends an envelope sealed earlier to peer and waits for
// the acknowledgement, as SendEnvelope does to env.To; it is how a room
// event (which has no To) reaches each member. A direct message may only
// go to its recipient. env is as for SendEnvelope (nil: sealed is
// opened). The errors are Send's.
func (s *Service) SendEnvelopeTo(ctx context.Context, peer string, sealed []byte, env *Envelope) error {
	env, err := sendable(sealed, env)
	if err != nil {
		return err
	}
	if env.Conversation == "" && env.To != peer {
		return fmt.Errorf("send: %w: direct message to %s sent to %s", ErrMalformed, mesh.ShortID(env.To), mesh.ShortID(peer))
	}
	return s.send(ctx, peer, sealed, env, nil)
}

// send delivers sealed to peer to: locally when it is us, otherwise over
// the peer's stream, redialling once if the stream breaks before the
// acknowledgement.
func (s *Service) send(ctx context.Context, to string, sealed []byte, env *Envelope, written func(bool)) error {
	if written == nil {
		written = func(bool) {}
	}
	if s.isClosed() {
		return ErrClosed
	}
	if to == s.self {
		if env.sealed == nil {
			env.sealed = sealed
		}
		a := s.acceptBatch(ctx, []*Envelope{env})[0]
		return ackError(a.Status, a.Reason)
	}
	if !mesh.ValidID(to) {
		return fmt.Errorf("send: %w: invalid recipient id %q", ErrMalformed, to)
	}
	if s.cfg.Dial == nil {
		return fmt.Errorf("send: %w: no Dial configured", ErrPeerUnreachable)
	}
	id, _ := peekID(sealed)
	frame := AppendFrame(make([]byte, 0, FrameHeaderLen+len(sealed)), FrameMsg, sealed)
	var broken error
	for attempt := 0; attempt < 2; attempt++ {
		c, err := s.outStream(ctx, to)
		if err != nil {
			return s.sendError(ctx, to, err)
		}
		a, err := c.roundTrip(ctx, id, frame, written)
		if err == nil {
			return ackError(a.Status, a.Reason)
		}
		if !errors.Is(err, errBroken) {
			return s.sendError(ctx, to, err)
		}
		broken = err
		if attempt == 0 {
			s.log.Debug("stream broke before the ack, redialling", "peer", mesh.ShortID(to), "msg", env.ID, "err", err)
		}
	}
	return s.sendError(ctx, to, broken)
}

// sendError turns an error of a send attempt into what Send returns.
func (s *Service) sendError(ctx context.Context, to string, err error) error {
	switch {
	case s.isClosed():
		return ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("send to %s: %w", mesh.ShortID(to), ctx.Err())
	case errors.Is(err, ErrPeerUnreachable):
		return err
	}
	return fmt.Errorf("send to %s: %w: %w", mesh.ShortID(to), ErrPeerUnreachable, err)
}

// ackError is Send's result for an ack status.
func ackError(st AckStatus, reason string) error {
	if st == AckRejected {
		return fmt.Errorf("%w: %s", ErrRejected, reason)
	}
	return nil
}

// outStream returns the open stream to peer, dialling one if there is
// none. Concurrent callers share one dial.
func (s *Service) outStream(ctx context.Context, peer string) (*outStream, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	c := s.out[peer]
	if c == nil {
		c = newOutStream(s, peer)
		s.out[peer] = c
		s.wg.Add(1)
		go c.dial()
	}
	s.mu.Unlock()
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.dialErr != nil {
		return nil, c.dialErr
	}
	return c, nil
}

// forget removes c from the outgoing streams if it is still the current one.
func (s *Service) forget(c *outStream) {
	s.mu.Lock()
	if s.out[c.peer] == c {
		delete(s.out, c.peer)
	}
	s.mu.Unlock()
}

// HandleStream serves one incoming stream: it reads messages, checks,
// de-duplicates and delivers them, and acknowledges each. mesh calls it in
// a goroutine of its own for every stream with ALPN; it returns when the
// stream ends, and closes it.
func (s *Service) HandleStream(st Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		st.Close()
		return
	}
	in := newInStream(s, st)
	s.in[in] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	in.close(in.serve())
	s.mu.Lock()
	delete(s.in, in)
	s.mu.Unlock()
}

// acceptBatch runs the receiving steps after messages' envelopes have
// been opened and their addressing checked: de-duplication, the clock,
// delivery. It returns the acknowledgement for each.
func (s *Service) acceptBatch(ctx context.Context, envs []*Envelope) []Ack {
	acks := make([]Ack, len(envs))
	keys := make([]dedupKey, len(envs))
	first := make(map[dedupKey]int, len(envs)) // a message sent twice in one batch is delivered once
	var fresh []*Envelope
	var freshIdx []int
	for i, env := range envs {
		acks[i].ID, _ = peekID(env.sealed)
		k := keyOf(env.sealed)
		keys[i] = k
		if _, dup := first[k]; dup {
			acks[i].Status = AckDuplicate
			continue
		}
		first[k] = i
	again:
		state, wait := s.seen.begin(k)
		switch state {
		case seenDone:
			acks[i].Status = AckDuplicate
			continue
		case seenBusy: // another stream is delivering it right now
			select {
			case <-wait:
				goto again
			case <-ctx.Done():
			case <-s.ctx.Done():
			}
			acks[i].Status, acks[i].Reason = AckRejected, "receiver shutting down"
			continue
		}
		if !s.cfg.Clock.Observe(env.Time) {
			s.log.Warn("peer clock far ahead of ours; not following it",
				"peer", mesh.ShortID(env.Author), "msg", env.ID,
				"ahead", time.Until(env.Time.WallTime()).Round(time.Second))
		}
		fresh = append(fresh, env)
		freshIdx = append(freshIdx, i)
	}
	if len(fresh) == 0 {
		return acks
	}
	errs := s.cfg.DeliverBatch(s.ctx, fresh)
	for j, i := range freshIdx {
		var err error
		if j < len(errs) {
			err = errs[j]
		}
		s.seen.finish(keys[i], err == nil)
		if err != nil {
			level := slog.LevelInfo
			if s.ctx.Err() != nil {
				level = slog.LevelDebug // shutting down
			}
			s.log.Log(s.ctx, level, "delivery refused", "peer", mesh.ShortID(envs[i].Author), "msg", envs[i].ID, "err", err)
			acks[i].Status, acks[i].Reason = AckRejected, clipReason(err.Error())
			continue
		}
		acks[i].Status = AckOK
	}
	// Duplicates within the batch share their first copy's fate.
	for i := range envs {
		if f := first[keys[i]]; f != i && acks[f].Status == AckRejected {
			acks[i] = Ack{ID: acks[i].ID, Status: AckRejected, Reason: acks[f].Reason}
		}
	}
	return acks
}

// Close closes every stream, waits until every goroutine the Service
// started and every HandleStream call has returned, and makes later calls
// fail with ErrClosed. It is idempotent; every call waits.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	outs := make([]*outStream, 0, len(s.out))
	for _, c := range s.out {
		outs = append(outs, c)
	}
	ins := make([]*inStream, 0, len(s.in))
	for in := range s.in {
		ins = append(ins, in)
	}
	s.mu.Unlock()

	s.cancel()
	for _, c := range outs {
		c.close(ErrClosed)
	}
	for _, in := range ins {
		in.close(ErrClosed)
	}
	s.wg.Wait()
	close(s.done)
	return nil
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// clipName makes a display name fit an envelope: valid UTF-8 without NUL,
// at most MaxName bytes.
func clipName(n string) string {
	return clip(strings.ReplaceAll(n, "\x00", ""), MaxName)
}
