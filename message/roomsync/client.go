package roomsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"lanchat/mesh"
	"lanchat/message"
)

// Pull asks peer for the events of room that have does not hold, and
// hands them to sink page by page as they arrive, each page checked
// first (see Sink). It returns when the peer has sent all it holds beyond
// have, or at the first error; what sink accepted before an error stays
// accepted. The Stats count what travelled either way.
//
// Errors name the peer and wrap ErrRefused (and ErrRateLimited) when the
// peer did not serve the request, ErrInvalid when its answer broke the
// protocol or carried an envelope that failed its checks (nothing of
// that page reaches sink), sink's error, the context's, or ErrClosed.
func (s *Syncer) Pull(ctx context.Context, peer, room string, have Vector, sink Sink) (Stats, error) {
	var st Stats
	fail := func(err error) (Stats, error) {
		return st, fmt.Errorf("pull %s from %s: %w", room, mesh.ShortID(peer), err)
	}
	if !message.ValidRoom(room) {
		return fail(fmt.Errorf("%w: invalid room name %q", message.ErrMalformed, room))
	}
	have = trimVector(have, MaxVectorLen)
	for a, n := range have {
		if n > 0 && !mesh.ValidID(a) {
			return fail(fmt.Errorf("%w: invalid author id %q in the vector", message.ErrMalformed, a))
		}
	}
	// The sink's context ends with the caller's or with Close.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	c, end, err := s.open(ctx, peer)
	if err != nil {
		return fail(err)
	}
	defer end()
	p := &puller{s: s, c: c, peer: peer, room: room, have: have, sink: sink, progress: make(map[string]uint64)}
	err = p.run(ctx)
	if err != nil {
		err = s.streamError(ctx, c, err) // may write a CLOSE: count it
	}
	st = Stats{Events: p.events, Pages: p.pages, BytesIn: c.in, BytesOut: c.out}
	if err != nil {
		return fail(err)
	}
	return st, nil
}

// trimVector returns have if it names at most limit authors, else a
// copy with the limit authors of whom it holds most (ties by id). A room
// anyone may join can have more authors than a PULL can name (fresh keys
// cost nothing): the events of the authors left out come again, and the
// sink keeps what it holds already, instead of the room never being
// caught up on again.
func trimVector(have Vector, limit int) Vector {
	if vectorLen(have) <= limit {
		return have
	}
	authors := make([]string, 0, len(have))
	for a, n := range have {
		if n > 0 {
			authors = append(authors, a)
		}
	}
	slices.SortFunc(authors, func(a, b string) int {
		if c := cmp.Compare(have[b], have[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	out := make(Vector, limit)
	for _, a := range authors[:limit] {
		out[a] = have[a]
	}
	return out
}

// puller is the state of one Pull.
type puller struct {
	s          *Syncer
	c          *conn
	peer, room string
	have       Vector
	sink       Sink

	progress map[string]uint64 // counts of the authors announced so far, as accepted
	cur      *head             // the author whose events are arriving; nil before the first HEAD
	next     uint64            // the seq expected next from cur.author
	fresh    bool              // no page of cur has come yet: its first event may skip ahead
	state    bool              // a STATE frame has come

	events, pages int
}

func (p *puller) run(ctx context.Context) error {
	if err := p.c.write(appendFrame(nil, FramePull, appendPull(nil, p.room, p.have))); err != nil {
		return err
	}
	for {
		f, err := p.c.read(p.s.cfg.ResponseTimeout)
		if err != nil {
			return readError(err)
		}
		switch f.Type {
		case FrameHead:
			h, err := parseHead(f.Payload)
			if err != nil {
				return invalid(err)
			}
			if p.cur != nil && p.next <= p.cur.until {
				return invalid(fmt.Errorf("head of %s before events %d..%d of %s", mesh.ShortID(h.author), p.next, p.cur.until, mesh.ShortID(p.cur.author)))
			}
			had, ok := p.progress[h.author]
			if !ok {
				had = p.have[h.author]
			}
			if h.after != had {
				return invalid(fmt.Errorf("head of %s after %d, we hold %d", mesh.ShortID(h.author), h.after, had))
			}
			p.cur, p.next, p.fresh = &h, h.after+1, true
		case FrameState:
			if err := p.stateFrame(ctx, f.Payload); err != nil {
				return err
			}
		case FramePage:
			if err := p.page(ctx, f.Payload); err != nil {
				return err
			}
		case FrameDone:
			if p.cur != nil && p.next <= p.cur.until {
				return invalid(fmt.Errorf("done before events %d..%d of %s", p.next, p.cur.until, mesh.ShortID(p.cur.author)))
			}
			p.c.closeWith("done")
			return nil
		case FrameRefuse:
			return refused(f.Payload)
		case FrameClose:
			r, _ := parseReason(f.Payload)
			return fmt.Errorf("%w: %q", errPeerClosed, r)
		default:
			return invalid(fmt.Errorf("%w: unexpected %v frame from a server", message.ErrMalformed, f.Type))
		}
	}
}

// page checks one PAGE of the current author's events and hands it to
// the sink.
func (p *puller) page(ctx context.Context, payload []byte) error {
	if p.cur == nil || p.next > p.cur.until {
		return invalid(errors.New("page beyond the events announced"))
	}
	sealed, err := parsePage(payload)
	if err != nil {
		return invalid(err)
	}
	if p.fresh {
		// A server that pruned the author's older events starts at its
		// witness: the sink judges whether it may skip there.
		if seq, ok := message.PeekSeq(sealed[0]); ok && seq > p.next && seq <= p.cur.until {
			p.next = seq
		}
	}
	if uint64(len(sealed)) > p.cur.until-p.next+1 {
		return invalid(fmt.Errorf("page of %d events of %s, %d announced", len(sealed), mesh.ShortID(p.cur.author), p.cur.until-p.next+1))
	}
	envs, errs := p.s.verify.OpenBatch(sealed)
	for i, env := range envs {
		seq := p.next + uint64(i)
		if errs[i] != nil {
			return invalid(fmt.Errorf("event %d of %s: %w", seq, mesh.ShortID(p.cur.author), errs[i]))
		}
		if err := checkEvent(env, p.room, p.cur.author, seq); err != nil {
			return invalid(err)
		}
	}
	if err := p.sink.Accept(ctx, p.peer, p.room, envs); err != nil {
		p.c.closeWith("not accepted")
		return fmt.Errorf("accept: %w", err)
	}
	p.next += uint64(len(envs))
	p.fresh = false
	p.progress[p.cur.author] = p.next - 1
	p.events += len(envs)
	p.pages++
	return nil
}

// stateFrame checks a STATE frame, which may come once, before the
// first HEAD: the room's retention events, each opened and of the room,
// and hands them to the sink.
func (p *puller) stateFrame(ctx context.Context, payload []byte) error {
	if p.state || p.cur != nil {
		return invalid(fmt.Errorf("%w: state frame out of its place", message.ErrMalformed))
	}
	p.state = true
	sealed, err := parsePage(payload)
	if err != nil {
		return invalid(err)
	}
	if len(sealed) > MaxState {
		return invalid(fmt.Errorf("%w: state of %d events, limit %d", message.ErrTooLarge, len(sealed), MaxState))
	}
	envs, errs := p.s.verify.OpenBatch(sealed)
	for i, env := range envs {
		if errs[i] != nil {
			return invalid(fmt.Errorf("state event %d: %w", i, errs[i]))
		}
		switch {
		case env.Version() != message.EnvelopeV2 || env.Seq == 0:
			return invalid(fmt.Errorf("%w: state event %s is not a room event", message.ErrMalformed, env.ID))
		case env.Conversation != p.room:
			return invalid(fmt.Errorf("%w: state event %s of room %q, not %q", message.ErrMalformed, env.ID, env.Conversation, p.room))
		case env.Kind != message.KindRetention:
			return invalid(fmt.Errorf("%w: state event %s of kind %q", message.ErrMalformed, env.ID, env.Kind))
		}
	}
	if err := p.sink.Accept(ctx, p.peer, p.room, envs); err != nil {
		p.c.closeWith("not accepted")
		return fmt.Errorf("accept: %w", err)
	}
	return nil
}

// checkEvent checks an opened envelope is event seq of author in room.
func checkEvent(env *message.Envelope, room, author string, seq uint64) error {
	switch {
	case env.Version() != message.EnvelopeV2:
		return fmt.Errorf("%w: version %d envelope %s, not a room event", message.ErrMalformed, env.Version(), env.ID)
	case env.Conversation != room:
		return fmt.Errorf("%w: event %s of room %q, not %q", message.ErrMalformed, env.ID, env.Conversation, room)
	case env.Author != author:
		return fmt.Errorf("%w: event %s by %s, announced %s", message.ErrMalformed, env.ID, mesh.ShortID(env.Author), mesh.ShortID(author))
	case env.Seq != seq:
		return fmt.Errorf("%w: event %s of %s has seq %d, want %d", message.ErrMalformed, env.ID, mesh.ShortID(author), env.Seq, seq)
	}
	return nil
}

// Index asks peer for its latest membership event of every room it has
// joined. Each is checked: a valid signature, peer as author, kind
// room.join or room.leave, a room event (version 2), one per room; at
// most Config.MaxIndex. Errors are Pull's.
func (s *Syncer) Index(ctx context.Context, peer string) ([]*message.Envelope, error) {
	fail := func(err error) ([]*message.Envelope, error) {
		return nil, fmt.Errorf("index of %s: %w", mesh.ShortID(peer), err)
	}
	c, end, err := s.open(ctx, peer)
	if err != nil {
		return fail(err)
	}
	defer end()
	out, err := s.index(c, peer)
	if err != nil {
		return fail(s.streamError(ctx, c, err))
	}
	return out, nil
}

func (s *Syncer) index(c *conn, peer string) ([]*message.Envelope, error) {
	if err := c.write(appendFrame(nil, FrameIndex, nil)); err != nil {
		return nil, err
	}
	var out []*message.Envelope
	rooms := make(map[string]bool)
	for {
		f, err := c.read(s.cfg.ResponseTimeout)
		if err != nil {
			return nil, readError(err)
		}
		switch f.Type {
		case FramePage:
			sealed, err := parsePage(f.Payload)
			if err != nil {
				return nil, invalid(err)
			}
			if len(out)+len(sealed) > s.cfg.MaxIndex {
				return nil, invalid(fmt.Errorf("%w: more than %d memberships", message.ErrTooLarge, s.cfg.MaxIndex))
			}
			envs, errs := s.verify.OpenBatch(sealed)
			for i, env := range envs {
				if errs[i] != nil {
					return nil, invalid(errs[i])
				}
				switch {
				case env.Version() != message.EnvelopeV2 || !message.ValidRoom(env.Conversation):
					return nil, invalid(fmt.Errorf("%w: membership %s is not a room event", message.ErrMalformed, env.ID))
				case env.Author != peer:
					return nil, invalid(fmt.Errorf("%w: membership %s by %s", message.ErrMalformed, env.ID, mesh.ShortID(env.Author)))
				case env.Kind != message.KindJoin && env.Kind != message.KindLeave:
					return nil, invalid(fmt.Errorf("%w: membership %s of kind %q", message.ErrMalformed, env.ID, env.Kind))
				case rooms[env.Conversation]:
					return nil, invalid(fmt.Errorf("%w: two memberships of %s", message.ErrMalformed, env.Conversation))
				}
				rooms[env.Conversation] = true
				out = append(out, env)
			}
		case FrameDone:
			c.closeWith("done")
			return out, nil
		case FrameRefuse:
			return nil, refused(f.Payload)
		case FrameClose:
			r, _ := parseReason(f.Payload)
			return nil, fmt.Errorf("%w: %q", errPeerClosed, r)
		default:
			return nil, invalid(fmt.Errorf("%w: unexpected %v frame from a server", message.ErrMalformed, f.Type))
		}
	}
}

// open dials peer for a Pull or Index and returns the stream and the
// function that ends the call (closing the stream).
func (s *Syncer) open(ctx context.Context, peer string) (*conn, func(), error) {
	if s.cfg.Dial == nil {
		return nil, nil, errors.New("no Dial configured")
	}
	if !s.begin() {
		return nil, nil, ErrClosed
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	stopDial := context.AfterFunc(s.ctx, cancel)
	st, err := s.cfg.Dial(dctx, peer, ALPN)
	stopDial()
	cancel()
	if err == nil && st.PeerID() != peer {
		st.Close()
		err = fmt.Errorf("reached %s instead", mesh.ShortID(st.PeerID()))
	}
	if err != nil {
		s.wg.Done()
		if s.ctx.Err() != nil {
			return nil, nil, ErrClosed
		}
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	if !s.register(st) {
		st.Close()
		s.wg.Done()
		return nil, nil, ErrClosed
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	end := func() {
		stop()
		st.Close()
		s.unregister(st)
		s.wg.Done()
	}
	return newConn(s.ctx, st, &s.cfg), end, nil
}

// streamError explains err, which ended a client's stream: the
// context's end or Close rather than the closed stream they cause, and a
// protocol violation is told to the peer.
func (s *Syncer) streamError(ctx context.Context, c *conn, err error) error {
	switch {
	case s.ctx.Err() != nil:
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrInvalid):
		c.closeWith(err.Error())
	}
	return err
}

// readError marks a frame that could not be read for breaking the
// protocol as the peer's violation.
func readError(err error) error {
	if errors.Is(err, message.ErrMalformed) || errors.Is(err, message.ErrTooLarge) {
		return invalid(err)
	}
	return err
}

// invalid marks err as the peer's protocol violation.
func invalid(err error) error { return fmt.Errorf("%w: %w", ErrInvalid, err) }

// refused turns a REFUSE payload into the error Pull returns.
func refused(p []byte) error {
	code, reason, err := parseRefuse(p)
	if err != nil {
		return invalid(err)
	}
	if code == refuseRateLimited {
		return fmt.Errorf("%w: %w: %s", ErrRefused, ErrRateLimited, reason)
	}
	return fmt.Errorf("%w: %s", ErrRefused, reason)
}
