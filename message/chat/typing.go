package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"lanchat/internal/ratelimit"
	"lanchat/message"
)

// KindTyping is the envelope kind of a typing indicator: the author is
// writing to the recipient now, or with a body, in the room the body
// names (a room the author and the recipient are both in). Unlike a
// message it is ephemeral: never stored on either side, never queued (a
// peer that is offline or unreachable does not get it), and acknowledged
// like any envelope; a refusal is not retried. It is worth something
// for a few seconds only, so a receiver shows it for TypingFor.
const KindTyping = "typing"

// Bounds of typing indicators: a sender sends at most one per peer every
// TypingEvery; a receiver publishes at most one per peer a second (the
// per-peer limiter bounds the envelopes before that), and shows one for
// TypingFor after it came.
const (
	TypingEvery = 3 * time.Second
	TypingFor   = 6 * time.Second
)

// MaxTypingRoom bounds the members online a room's indicator goes to:
// one keystroke would cost that many envelopes, so a larger room shows
// no typing at all rather than a flood of it.
const MaxTypingRoom = 50

// typingSendTimeout bounds one indicator's delivery: later than that it
// says nothing true.
const typingSendTimeout = 2 * time.Second

// TypingEvent is a peer's typing indicator received: to this node, or
// in Room.
type TypingEvent struct {
	From PeerRef
	Room string
}

func (TypingEvent) chatEvent() {}

var errTypingBody = errors.New("a typing indicator's body is empty or a room name")

// newTypingLimits makes the limiters of indicators sent (by peer id, or
// by room for a room's) and received (by author: one for direct ones,
// one for rooms', so that a person's two do not hold each other back; a
// person types in one conversation at a time, so one room limit will do).
func newTypingLimits(now func() time.Time) (out, in, roomIn *ratelimit.Keyed[string]) {
	out = ratelimit.New[string](1/TypingEvery.Seconds(), 1, maxBuckets, ratelimit.Reset, now)
	in = ratelimit.New[string](1, 1, maxBuckets, ratelimit.Reset, now)
	roomIn = ratelimit.New[string](1, 1, maxBuckets, ratelimit.Reset, now)
	return out, in, roomIn
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

// RoomTyping tells the members of room online now that a person is
// writing there. It reports whether indicators went out: not when some
// went to the room less than TypingEvery ago, nor when nobody else is
// online, nor when more than MaxTypingRoom are. Only a member may.
func (s *Service) RoomTyping(ctx context.Context, room string) (bool, error) {
	if s.ctx.Err() != nil {
		return false, ErrClosed
	}
	if err := CheckRoom(room); err != nil {
		return false, err
	}
	ids, joined, err := s.rooms.members(ctx, room)
	if err != nil {
		return false, err
	}
	if !joined {
		return false, fmt.Errorf("%w %s", ErrNotMember, room)
	}
	var online []string
	for _, id := range ids {
		if _, ok := s.online(id); ok && id != s.cfg.Self {
			online = append(online, id)
		}
	}
	// The room's key ("#…") is no peer id: the two limits never mix.
	if len(online) == 0 || len(online) > MaxTypingRoom || !s.typingOut.Allow(room) {
		return false, nil
	}
	envs := make([]*message.Envelope, len(online)) // each signed for its recipient
	for i, id := range online {
		if envs[i], err = s.seal(id, KindTyping, room); err != nil {
			return false, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, typingSendTimeout)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards sent
		sent int
	)
	for i, id := range online {
		env := envs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs := s.cfg.Transport.SendBatch(ctx, id, []message.Queued{{ID: env.ID, Sealed: env.Sealed()}}, func(bool) {})
			if errs[0] != nil {
				s.log.Debug("room typing indicator not delivered", "peer", id, "room", room, "err", errs[0])
				return
			}
			mu.Lock()
			sent++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sent > 0, nil
}

// receiveTyping takes a typing indicator that passed the per-peer
// limiter: published, at most once a second per peer, and kept nowhere.
// A room's is taken only from a member of a room this node is in: the
// limiter comes first, so a stranger costs at most one look at the
// room's members a second.
func (s *Service) receiveTyping(ctx context.Context, env *message.Envelope) error {
	if env.Body != "" && CheckRoom(env.Body) != nil {
		return errTypingBody
	}
	in := s.typingIn
	if env.Body != "" {
		in = s.typingRoomIn
	}
	if !in.Allow(env.Author) {
		return nil
	}
	if room := env.Body; room != "" {
		ids, joined, err := s.rooms.members(ctx, room)
		if err != nil {
			return err
		}
		if !joined || !slices.Contains(ids, env.Author) {
			return fmt.Errorf("%w %s", ErrNotMember, room)
		}
	}
	s.cfg.Publish(TypingEvent{From: s.PeerRef(env.Author), Room: env.Body})
	return nil
}
