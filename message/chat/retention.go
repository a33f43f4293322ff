package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"lanchat/message"
	"lanchat/message/store"
)

// Retention. A room may say how long its members keep its events: a
// room.retention event, signed by the member who set it, whose body is
// the duration in seconds (0 keeps everything, the default). The latest
// in the room's order is in force, so members holding the same events
// agree on it. Each member deletes the events older than the cutoff (by
// pruneSlack more, for members whose clocks are behind) but keeps, of
// every author, the newest of those as a hidden witness: the start of
// that author's log it can still hand to a member catching up. History
// hides everything older than the cutoff, deleted yet or not.
// A member that holds an author's events up to h may then be offered
// that author's witness m > h+1: it takes the jump only if m is older
// than its own cutoff, which it can check (m is signed; the room's
// retention events come first in a catch-up answer), and as an author's
// times grow with its sequence (accept enforces it), every event it
// skips is older still. No relay can hide a retained event behind a
// skip.
//
// The cutoff is a high-water mark, not just now minus the retention in
// force: when a room's retention is lengthened, what members pruned
// under the shorter one is gone, and a late joiner must still be able
// to take the jumps over it. Each setting i, in force from its time t_i
// until the next one's t_{i+1} (or now), let members prune up to
// t_{i+1} − R_i; the cutoff is the largest of those. The store keeps a
// suffix of a room's settings (from the one that brought the cutoff
// furthest while it still does), so the setting each one was replaced
// by is always there; forgetting the oldest beyond its cap can only
// lower the cutoff, which refuses a skip rather than accepts a wrong
// one.

// Retention bounds, on the author's side and every receiver's.
const (
	DefaultMinRetention = time.Hour
	MaxRetention        = 10 * 365 * 24 * time.Hour
	pruneEvery          = time.Minute
	// pruneSlack: members delete only what is this much older than the
	// cutoff, so that a member whose clock is behind ours by less still
	// finds our witnesses past its own cutoff, and takes the skips.
	pruneSlack       = 10 * time.Minute
	maxRetentionBody = 20 // decimal digits of a uint64
)

// ErrInvalidRetention: a retention outside the bounds, or a body that is
// not one.
var ErrInvalidRetention = errors.New("invalid retention")

// errNotMonotonic: an author's event is not later than its previous one.
var errNotMonotonic = errors.New("event time not after the author's previous event")

// RetentionEvent is a member setting a room's retention.
type RetentionEvent struct {
	Room      string
	Peer      PeerRef
	Retention time.Duration // 0: kept for ever
}

func (RetentionEvent) chatEvent() {}

// CheckRetention refuses a retention a room cannot have: 0 (keep
// everything) or a whole number of seconds from the minimum to
// MaxRetention.
func (s *Service) CheckRetention(d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d%time.Second != 0:
		return fmt.Errorf("%w: %v is not a whole number of seconds", ErrInvalidRetention, d)
	case d < s.cfg.MinRetention:
		return fmt.Errorf("%w: %v is below the minimum of %v (0 keeps everything)", ErrInvalidRetention, d, s.cfg.MinRetention)
	case d > MaxRetention:
		return fmt.Errorf("%w: %v is above the maximum of %v", ErrInvalidRetention, d, MaxRetention)
	}
	return nil
}

// parseRetention reads a room.retention body: decimal seconds, no sign,
// no leading zero, within the bounds.
func (s *Service) parseRetention(body string) (uint64, error) {
	if body == "" || len(body) > maxRetentionBody || len(body) > 1 && body[0] == '0' {
		return 0, fmt.Errorf("%w: body %q is not a number of seconds", ErrInvalidRetention, clip(body, 32))
	}
	for i := 0; i < len(body); i++ {
		if body[i] < '0' || body[i] > '9' {
			return 0, fmt.Errorf("%w: body %q is not a number of seconds", ErrInvalidRetention, clip(body, 32))
		}
	}
	secs, err := strconv.ParseUint(body, 10, 64)
	if err != nil || secs > uint64(MaxRetention/time.Second) {
		return 0, fmt.Errorf("%w: %s seconds is above the maximum of %v", ErrInvalidRetention, clip(body, 32), MaxRetention)
	}
	if err := s.CheckRetention(time.Duration(secs) * time.Second); err != nil {
		return 0, err
	}
	return secs, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// checkRetentionEvent checks a received room.retention event: its body,
// and a time not beyond what our clock lets a peer be ahead (a setting
// stamped years ahead would stay the latest, and in force, for ever).
func (r *rooms) checkRetentionEvent(env *message.Envelope) (uint64, error) {
	secs, err := r.s.parseRetention(env.Body)
	if err != nil {
		return 0, err
	}
	if ahead := time.Duration(env.Time.Wall - r.s.now().UnixNano()); ahead > message.MaxClockAhead {
		return 0, fmt.Errorf("%w: set %v ahead of our clock", ErrInvalidRetention, ahead.Round(time.Second))
	}
	return secs, nil
}

// settings returns room's retention events, in order, reading them on
// first use.
func (r *rooms) settings(ctx context.Context, room string) ([]store.RoomRetention, error) {
	r.rmu.Lock()
	rs, ok := r.retention[room]
	gen := r.retGen
	r.rmu.Unlock()
	if ok {
		return rs, nil
	}
	rs, err := r.s.st.RoomRetentions(ctx, room)
	if err != nil {
		return nil, err
	}
	r.rmu.Lock()
	if r.retGen == gen {
		if len(r.retention) >= maxRooms {
			clear(r.retention)
		}
		r.retention[room] = rs
	}
	r.rmu.Unlock()
	return rs, nil
}

// settingsWritten forgets the cached settings of the rooms rs are of,
// once written.
func (r *rooms) settingsWritten(rs []store.RoomRetention) {
	if len(rs) == 0 {
		return
	}
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.retGen++
	for _, rt := range rs {
		delete(r.retention, rt.Env.Conversation)
	}
}

// cutoffOf is the high-water cutoff (unix ns) of settings rs in order,
// at now: events older than it may be pruned. 0: nothing may.
func cutoffOf(rs []store.RoomRetention, now time.Time) int64 {
	var hw int64
	for i, rt := range rs {
		if rt.Seconds == 0 {
			continue
		}
		end := now.UnixNano()
		if i+1 < len(rs) {
			end = min(end, rs[i+1].Env.Time.Wall)
		}
		hw = max(hw, end-int64(rt.Seconds)*int64(time.Second))
	}
	return hw
}

// inForce is the retention of settings rs: the last one's.
func inForce(rs []store.RoomRetention) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	return time.Duration(rs[len(rs)-1].Seconds) * time.Second
}

// cutoff is room's cutoff now, counting retention events of batch (in
// the same write, not yet stored) as well.
func (r *rooms) cutoff(ctx context.Context, room string, batch []store.RoomRetention) (int64, error) {
	rs, err := r.settings(ctx, room)
	if err != nil {
		return 0, err
	}
	merged := false
	for _, b := range batch {
		if b.Env.Conversation == room && !slices.ContainsFunc(rs, func(x store.RoomRetention) bool { return x.Env.ID == b.Env.ID && x.Env.Author == b.Env.Author }) {
			rs = append(slices.Clip(rs), b) // a copy: rs is the cache's
			merged = true
		}
	}
	if merged {
		slices.SortFunc(rs, func(a, b store.RoomRetention) int { return message.Compare(a.Env, b.Env) })
		if len(rs) > store.MaxRetentionEvents {
			rs = rs[len(rs)-store.MaxRetentionEvents:]
		}
	}
	return cutoffOf(rs, r.s.now()), nil
}

// Retention is room's retention in force (0: kept for ever).
func (s *Service) Retention(ctx context.Context, room string) (time.Duration, error) {
	rs, err := s.rooms.settings(ctx, room)
	return inForce(rs), err
}

// SetRetention sets how long room's members keep its events, as a
// signed event of ours in its log, handed to every member online; d is
// 0 (keep everything) or within CheckRetention's bounds. Members prune
// what is older as soon as they have it.
func (s *Service) SetRetention(ctx context.Context, room string, d time.Duration) (RoomInfo, error) {
	if s.ctx.Err() != nil {
		return RoomInfo{}, ErrClosed
	}
	if err := s.CheckRetention(d); err != nil {
		return RoomInfo{}, err
	}
	env, err := s.rooms.author(ctx, room, message.KindRetention, strconv.FormatInt(int64(d/time.Second), 10))
	if err != nil {
		return RoomInfo{}, err
	}
	s.rooms.publish(env, true)
	s.rooms.pruneLater(room)
	if peers, err := s.rooms.onlineMembers(ctx, room); err == nil {
		s.rooms.background(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
			defer cancel()
			s.rooms.fanout(ctx, env, peers)
		})
	}
	return s.RoomInfo(ctx, room)
}

// prune deletes room's events older than its cutoff (less pruneSlack),
// but each author's witness (store.PruneRoom). History hides them from
// the cutoff on.
func (r *rooms) prune(ctx context.Context, room string) error {
	cut, err := r.cutoff(ctx, room, nil)
	if err != nil || cut <= int64(pruneSlack) {
		return err
	}
	cut -= int64(pruneSlack)
	n, err := r.s.st.PruneRoom(ctx, room, cut)
	if err != nil {
		return err
	}
	if n > 0 {
		r.s.log.Debug("pruned a room", "room", room, "events", n, "cutoff", time.Unix(0, cut).UTC())
	}
	return nil
}

// pruneLater prunes room in the background: its retention changed.
func (r *rooms) pruneLater(room string) {
	r.background(func(ctx context.Context) {
		if err := r.prune(ctx, room); err != nil && ctx.Err() == nil {
			r.s.log.Warn("prune room", "room", room, "err", err)
		}
	})
}

// pruneAll prunes every room with a retention, now and then, until ctx
// ends.
func (r *rooms) pruneAll(ctx context.Context) {
	t := time.NewTicker(r.s.cfg.PruneEvery)
	defer t.Stop()
	for {
		rooms, err := r.s.st.RetentionRooms(ctx)
		for _, room := range rooms {
			if err := r.prune(ctx, room); err != nil && ctx.Err() == nil {
				r.s.log.Warn("prune room", "room", room, "err", err)
			}
		}
		if err != nil && ctx.Err() == nil {
			r.s.log.Warn("prune rooms", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// skippable says whether env, which jumps over a gap in its author's
// sequence after h, may be taken as the author's witness: it is older
// than room's cutoff (so is every event skipped, its times being
// earlier), and later than the author's event we hold.
func (r *rooms) skippable(ctx context.Context, env *message.Envelope, h store.RoomHead, batch []store.RoomRetention) (bool, error) {
	cut, err := r.cutoff(ctx, env.Conversation, batch)
	if err != nil {
		return false, err
	}
	if cut <= 0 || env.Time.Wall >= cut {
		return false, nil
	}
	if h.N > 0 && !h.Last.IsZero() && !h.Last.Less(env.Time) {
		return false, nil
	}
	return true, nil
}
