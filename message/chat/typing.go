package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lanchat/internal/ratelimit"
	"lanchat/message"
)

// KindTyping is the envelope kind of a typing indicator: the author is
// writing to the recipient now. Its body is empty. Unlike a message it
// is ephemeral: never stored on either side, never queued (a peer that
// is offline or unreachable does not get it), and acknowledged like any
// envelope; a refusal is not retried. It is worth something for a few
// seconds only, so a receiver shows it for TypingFor.
const KindTyping = "typing"

// Bounds of typing indicators: a sender sends at most one per peer every
// TypingEvery; a receiver publishes at most one per peer a second (the
// per-peer limiter bounds the envelopes before that), and shows one for
// TypingFor after it came.
const (
	TypingEvery = 3 * time.Second
	TypingFor   = 6 * time.Second
)

// typingSendTimeout bounds one indicator's delivery: later than that it
// says nothing true.
const typingSendTimeout = 2 * time.Second

// TypingEvent is a peer's typing indicator received.
type TypingEvent struct {
	From PeerRef
}

func (TypingEvent) chatEvent() {}

var errTypingBody = errors.New("a typing indicator has no body")

func newTypingLimits(now func() time.Time) (out, in *ratelimit.Keyed[string]) {
	out = ratelimit.New[string](1/TypingEvery.Seconds(), 1, maxBuckets, ratelimit.Reset, now)
	in = ratelimit.New[string](1, 1, maxBuckets, ratelimit.Reset, now)
	return out, in
}

// Typing tells to (a name, id or id prefix) that a person is writing to
// them. It reports whether an indicator went out: not when one went to
// the same peer less than TypingEvery ago, nor when the peer is offline
// (it is dropped, not queued), nor when the peer did not take it.
func (s *Service) Typing(ctx context.Context, to string) (PeerRef, bool, error) {
	if s.ctx.Err() != nil {
		return PeerRef{}, false, ErrClosed
	}
	p, err := s.Resolve(to)
	if err != nil {
		return PeerRef{}, false, err
	}
	ref := s.ref(p.ID, p.Name)
	if p.ID == s.cfg.Self {
		return ref, false, fmt.Errorf("%w: that is you", ErrInvalidText)
	}
	if _, online := s.online(p.ID); !online || !s.typingOut.Allow(p.ID) {
		return ref, false, nil
	}
	env, err := s.seal(p.ID, KindTyping, "")
	if err != nil {
		return ref, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, typingSendTimeout)
	defer cancel()
	errs := s.cfg.Transport.SendBatch(ctx, p.ID, []message.Queued{{ID: env.ID, Sealed: env.Sealed()}}, func(bool) {})
	if errs[0] != nil {
		s.log.Debug("typing indicator not delivered", "peer", p.ID, "err", errs[0])
		return ref, false, nil
	}
	return ref, true, nil
}

// receiveTyping takes a typing indicator that passed the per-peer
// limiter: published, at most once a second per peer, and kept nowhere.
func (s *Service) receiveTyping(env *message.Envelope) error {
	if env.Body != "" {
		return errTypingBody
	}
	if s.typingIn.Allow(env.Author) {
		s.cfg.Publish(TypingEvent{From: s.PeerRef(env.Author)})
	}
	return nil
}
