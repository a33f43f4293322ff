package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// Rooms. A room is the peers that joined it, and its history is a log
// every member holds a copy of: the events (messages, joins, leaves)
// each author signed, numbered 1, 2, … per author and room (Envelope.Seq).
// A node holds, for every author, a prefix of that author's events and
// never a later one without the earlier (an event that would leave a gap
// is refused and the gap fetched), so what it holds is summed up by a
// vector of counts, and catching up means asking a member for everything
// past one's vector: the cost grows with what is missing, not with the
// room. Every member shows a room in one order (message.OrderKey), so
// members holding the same events show the same history.
//
// Membership is part of the log: an author's events in a room start with
// a join, and an event of an author whose last membership event is a
// leave is refused. Rooms are open: anyone on the LAN may join one, and
// then gets its history; a node that is not in a room refuses its
// messages, keeps only who joined and left it (the directory), and is
// not asked to pass them on. A room may keep less than all of its log:
// see retention.go.

// GeneralRoom is the room every node is in unless it leaves it.
const GeneralRoom = "#general"

// RoomSync fetches room events from one peer: the catch-up protocol
// (message/roomsync), adapted by the node.
type RoomSync interface {
	// Pull asks peer for every event of room past have and hands them
	// to accept, a page at a time, checked: signed by their authors, of
	// room, each the next of its author.
	Pull(ctx context.Context, peer, room string, have map[string]uint64, accept func(ctx context.Context, from, room string, envs []*message.Envelope) error) error
	// Index asks peer for its own latest membership event in every room
	// it has been in.
	Index(ctx context.Context, peer string) ([]*message.Envelope, error)
}

// Room errors callers act on.
var (
	ErrNotMember   = errors.New("not a member of that room")
	ErrInvalidRoom = errors.New("invalid room name")
	errGap         = errors.New("gap in the author's sequence")
	errConflict    = errors.New("sequence number already used by another event")
)

// Room limits: how many rooms a node keeps track of, and how many pulls
// run at once.
const (
	maxRooms          = 1024 // rooms in the directory, joined or not
	maxRoomsPerAuthor = 64   // rooms one author may bring to the directory
	maxPulls          = 4
	maxPendingPulls   = maxRooms // pulls waiting for a slot or running, of all peers and rooms: one per room we could be in
	antiEntropyEvery  = 30 * time.Second
	gapRetry          = 300 * time.Millisecond
	fanoutTimeout     = 5 * time.Second
)

// RoomEvent is a member joining or leaving a room.
type RoomEvent struct {
	Room   string
	Peer   PeerRef
	Joined bool // false: left
}

func (RoomEvent) chatEvent() {}

// RoomInfo is a room as this node knows it.
type RoomInfo struct {
	Name          string
	Joined        bool
	MembersOnline int // this node included, when joined
	MembersTotal  int
	Unread        int
	Retention     time.Duration // how long members keep its events; 0: for ever
}

// RoomMember is one member of a room.
type RoomMember struct {
	PeerRef
	State  mesh.State
	Online bool
}

// RoomSendResult says how far a room message got.
type RoomSendResult struct {
	ID      string
	Room    string
	Online  int // other members online when it was sent
	Reached int // of those, how many stored it
	State   store.State
}

// rooms is the room half of the Service.
type rooms struct {
	s *Service

	mu    sync.Mutex                           // guards heads; held while an event is checked and written, so a room's log changes one write at a time
	heads map[string]map[string]store.RoomHead // by room, then author; loaded from the store on first use
	since map[string]message.Timestamp         // by room: the time of our latest join; what is older is history, not news
	// dirMembers caches, by room, who the directory says is in it: every
	// send asks. A write to the directory drops it and bumps dirGen, so
	// that a read begun before the write is not cached.
	dirMembers map[string][]string
	dirGen     uint64

	rmu       sync.Mutex                       // guards retention and retGen; taken under mu, never the other way
	retention map[string][]store.RoomRetention // by room: its retention events, in order; a cache of the store's
	retGen    uint64                           // bumped by each write of retention events, so that a read begun before is not cached

	pmu     sync.Mutex         // guards pulling
	pulling map[[2]string]bool // (peer, room) pulls in flight
	sem     chan struct{}      // bounds pulls at once

	bmu     sync.Mutex     // guards stopped, and orders wg.Add before stop's wg.Wait
	stopped bool           // set by stop: no more background work starts
	wg      sync.WaitGroup // pulls and fan-outs in the background
}

func newRooms(s *Service) *rooms {
	return &rooms{
		s:          s,
		heads:      map[string]map[string]store.RoomHead{},
		since:      map[string]message.Timestamp{},
		dirMembers: map[string][]string{},
		retention:  map[string][]store.RoomRetention{},
		pulling:    map[[2]string]bool{},
		sem:        make(chan struct{}, maxPulls),
	}
}

// load returns room's heads, reading them on first use. Called with mu held.
func (r *rooms) load(ctx context.Context, room string) (map[string]store.RoomHead, error) {
	if h, ok := r.heads[room]; ok {
		return h, nil
	}
	h, err := r.s.st.RoomHeads(ctx, room)
	if err != nil {
		return nil, err
	}
	if len(r.heads) >= maxRooms {
		// Forget a room we are not in; they are read again when needed.
		for name, hs := range r.heads {
			if !hs[r.s.cfg.Self].Member {
				delete(r.heads, name)
				break
			}
		}
	}
	r.heads[room] = h
	if h[r.s.cfg.Self].Member {
		mine, err := r.s.st.Directory(ctx, room, r.s.cfg.Self)
		if err == nil && len(mine) == 1 {
			if env, err := message.Open(mine[0].Sealed); err == nil {
				r.since[room] = env.Time
			}
		}
	}
	return h, nil
}

// CheckRoom refuses what is not a room name.
func CheckRoom(name string) error {
	if !message.ValidRoom(name) {
		return fmt.Errorf("%w %q: a room is '#' then 1 to %d of a-z, 0-9, '-', '_' and '.'", ErrInvalidRoom, name, message.MaxRoomName)
	}
	return nil
}

// accept checks room events and stores those that are next in their
// author's sequence, in one transaction. from is the peer that handed
// them over (their author on a direct stream, any member in catch-up).
// errs[i] is nil for an event stored now or held already.
func (r *rooms) accept(ctx context.Context, from string, envs []*message.Envelope) []error {
	errs := make([]error, len(envs))
	var (
		w        store.RoomWrite
		added    []*message.Envelope
		gaps     = map[string]bool{}
		touched  = map[string]map[string]store.RoomHead{} // room → author → new head
		history  = map[*message.Envelope]bool{}           // added, but from before we joined: not announced
		newRooms = map[string]map[string]bool{}           // rooms this batch brings to the directory, by author
		early    []*message.Envelope                      // settings taken before their place in the log, from after we joined
	)
	r.mu.Lock()
	cur := func(room, author string, heads map[string]store.RoomHead) store.RoomHead {
		if t, ok := touched[room][author]; ok {
			return t
		}
		return heads[author]
	}
	for i, env := range envs {
		room := env.Conversation
		membership := env.Kind == message.KindJoin || env.Kind == message.KindLeave
		setting := env.Kind == message.KindRetention
		if !message.ValidRoom(room) || env.Seq == 0 || !membership && !setting && env.Kind != message.KindText {
			errs[i] = fmt.Errorf("unsupported room event (kind %q, seq %d)", env.Kind, env.Seq)
			continue
		}
		var secs uint64
		if setting {
			var err error
			if secs, err = r.checkRetentionEvent(env); err != nil {
				r.s.log.Info("refusing a room retention", "room", room, "author", mesh.ShortID(env.Author), "from", mesh.ShortID(from), "err", err)
				errs[i] = err
				continue
			}
		}
		heads, err := r.load(ctx, room)
		if err != nil {
			errs[i] = err
			continue
		}
		if !cur(room, r.s.cfg.Self, heads).Member {
			if membership {
				if err := r.roomQuota(ctx, room, env.Author, newRooms); err != nil {
					errs[i] = err
					continue
				}
				w.Directory = append(w.Directory, env)
			} else {
				errs[i] = fmt.Errorf("%w %s", ErrNotMember, room)
			}
			continue
		}
		h := cur(room, env.Author, heads)
		skip := false // env is the witness of a pruned prefix, taken over a gap
		switch {
		case env.Seq <= h.N:
			id, err := r.heldAt(ctx, room, env.Author, env.Seq, added)
			switch {
			case err != nil:
				errs[i] = err
			case id == "":
				// Below the author's witness: pruned here, or skipped
				// when we caught up. Nothing to compare it with.
			case id == env.ID:
				if setting {
					w.Retention = append(w.Retention, store.RoomRetention{Env: env, Seconds: secs})
				}
			default:
				r.s.log.Warn("refusing a room event that reuses its author's sequence number; kept as evidence",
					"room", room, "author", mesh.ShortID(env.Author), "seq", env.Seq, "from", mesh.ShortID(from))
				w.Conflicts = append(w.Conflicts, store.RoomConflict{Env: env, From: from})
				errs[i] = errConflict
			}
			continue
		case env.Seq > h.N+1:
			if setting {
				// The setting counts before its place in the log is
				// reached: a catch-up answer hands the room's settings
				// first, for the skips that follow. Its author's join
				// may be pruned, so a member passing it on vouches for
				// it; straight from its author, the author must be
				// known to be in the room. The setting is signed, and
				// shown.
				if from == env.Author && !h.Member {
					if ok, err := r.inDirectory(ctx, room, env.Author); err != nil || !ok {
						r.s.log.Info("refusing a room retention from a non-member", "room", room, "author", mesh.ShortID(env.Author))
						errs[i] = fmt.Errorf("%w: the author is not in %s", ErrNotMember, room)
						continue
					}
				}
				w.Retention = append(w.Retention, store.RoomRetention{Env: env, Seconds: secs})
				if !env.Time.Less(r.since[room]) {
					early = append(early, env)
				}
			}
			ok, err := r.skippable(ctx, env, h, w.Retention)
			if err != nil {
				errs[i] = err
				continue
			}
			if ok {
				// The witness: what it skips is older still. A text or
				// a setting is written only by a member; a membership
				// event says so itself (below).
				skip = true
				h.N, h.Member, h.Last = env.Seq-1, true, message.Timestamp{}
				break
			}
			errs[i] = fmt.Errorf("%w: have %d of the author's events in %s, this is %d", errGap, h.N, room, env.Seq)
			if from != env.Author && !setting { // a catch-up answer's settings come ahead of their logs
				// A relay holds the author's events from a witness on;
				// one not older than our cutoff would hide the events
				// between from us.
				r.s.log.Warn("refusing a skip over room events that are not past the room's retention",
					"room", room, "author", mesh.ShortID(env.Author), "have", h.N, "offered", env.Seq, "time", env.Time, "from", mesh.ShortID(from))
			}
			gaps[room] = true
			if membership {
				w.Directory = append(w.Directory, env) // the latest word on who is in, while the rest is fetched
			}
			continue
		}
		if h.N > 0 && !h.Last.IsZero() && !h.Last.Less(env.Time) {
			r.s.log.Warn("refusing a room event not later than its author's previous one",
				"room", room, "author", mesh.ShortID(env.Author), "seq", env.Seq, "time", env.Time, "previous", h.Last, "from", mesh.ShortID(from))
			errs[i] = fmt.Errorf("%w (%v, then %v)", errNotMonotonic, h.Last, env.Time)
			continue
		}
		switch env.Kind {
		case message.KindJoin:
			h.Member = true
		case message.KindLeave:
			if !h.Member {
				errs[i] = fmt.Errorf("%w: the author left %s already", ErrNotMember, room)
				continue
			}
			h.Member = false
		default:
			if !h.Member {
				r.s.log.Info("refusing a room message from a non-member", "room", room, "author", mesh.ShortID(env.Author), "from", mesh.ShortID(from))
				errs[i] = fmt.Errorf("%w: the author is not in %s", ErrNotMember, room)
				continue
			}
		}
		h.N++
		h.Last = env.Time
		if touched[room] == nil {
			touched[room] = map[string]store.RoomHead{}
		}
		touched[room][env.Author] = h
		old := skip || env.Author != r.s.cfg.Self && env.Time.Less(r.since[room])
		w.Events = append(w.Events, store.RoomEvent{Env: env, Outgoing: env.Author == r.s.cfg.Self, Read: old})
		if membership {
			w.Directory = append(w.Directory, env)
		}
		if setting {
			w.Retention = append(w.Retention, store.RoomRetention{Env: env, Seconds: secs})
		}
		added = append(added, env)
		if old {
			history[env] = true
		}
		// Causality: what we write after reading this comes after it.
		r.s.clock.Observe(env.Time)
	}
	for room, authors := range touched {
		for author, h := range authors {
			w.Heads = append(w.Heads, store.RoomHeadUpdate{Room: room, Author: author, Head: h})
		}
	}
	if len(w.Events)+len(w.Directory)+len(w.Conflicts)+len(w.Retention) > 0 {
		if err := r.s.st.WriteRooms(ctx, w); err != nil {
			r.mu.Unlock()
			for i := range errs {
				if errs[i] == nil || errors.Is(errs[i], errConflict) {
					errs[i] = err
				}
			}
			return errs
		}
		r.dirChanged(w.Directory)
		r.settingsWritten(w.Retention)
	}
	for room, authors := range touched {
		for author, h := range authors {
			r.heads[room][author] = h
		}
	}
	r.mu.Unlock()

	for _, env := range added {
		if !history[env] {
			r.publish(env, false)
		}
	}
	// A setting in force before its place in the log is reached is told
	// now: it prunes already, and members see who set it.
	for _, env := range early {
		if rs, err := r.settings(ctx, env.Conversation); err == nil && len(rs) > 0 && rs[len(rs)-1].Env.ID == env.ID {
			r.publish(env, false)
		}
	}
	for room := range gaps {
		r.pullLater(from, room)
	}
	pruned := map[string]bool{}
	for _, rt := range w.Retention {
		if room := rt.Env.Conversation; !pruned[room] {
			pruned[room] = true
			r.pruneLater(room)
		}
	}
	// A member who just joined, heard from directly, may lack the room's
	// history: pulling from it shows its server our vector, and it
	// fetches what we are ahead by (roomsync's Ahead).
	for _, env := range added {
		if env.Kind == message.KindJoin && env.Author == from && from != r.s.cfg.Self {
			r.pullLater(from, env.Conversation)
		}
	}
	return errs
}

// inDirectory reports whether the directory's latest membership event of
// author in room is a join. Called with mu held.
func (r *rooms) inDirectory(ctx context.Context, room, author string) (bool, error) {
	es, err := r.s.st.Directory(ctx, room, author)
	return err == nil && len(es) == 1 && es[0].Joined, err
}

// roomQuota refuses a membership event that would make the directory
// hold more than maxRooms rooms, or author be in more than
// maxRoomsPerAuthor of them: a stranger's fresh rooms are bounded, and
// one key cannot crowd out the rooms of everyone else. batch holds the
// rooms the events before it in the same batch bring, and is updated.
func (r *rooms) roomQuota(ctx context.Context, room, author string, batch map[string]map[string]bool) error {
	known, rooms, byAuthor, err := r.s.st.DirectoryCounts(ctx, room, author)
	if err != nil {
		return err
	}
	if known || batch[room] != nil {
		return nil
	}
	authorNew := 0
	for _, by := range batch {
		if by[author] {
			authorNew++
		}
	}
	switch {
	case rooms+len(batch) >= maxRooms:
		return fmt.Errorf("too many rooms known (%d)", maxRooms)
	case byAuthor+authorNew >= maxRoomsPerAuthor:
		return fmt.Errorf("the author is in %d rooms already, the most this node keeps track of", maxRoomsPerAuthor)
	}
	batch[room] = map[string]bool{author: true}
	return nil
}

// heldAt is the id of the event author numbered seq in room, among
// those held or added in this batch.
func (r *rooms) heldAt(ctx context.Context, room, author string, seq uint64, added []*message.Envelope) (string, error) {
	for _, e := range added {
		if e.Conversation == room && e.Author == author && e.Seq == seq {
			return e.ID, nil
		}
	}
	return r.s.st.RoomEventAt(ctx, room, author, seq)
}

// publish reports an event added to a room's log.
func (r *rooms) publish(env *message.Envelope, outgoing bool) {
	from := PeerRef{ID: env.Author, Name: env.AuthorName}
	if mesh.ValidName(from.Name) != nil {
		from.Name = mesh.ShortID(env.Author)
	}
	if env.Author == r.s.cfg.Self {
		from = r.s.Self()
	} else {
		r.s.contacts.saw(env.Author, from.Name)
		from.Trust = r.s.TrustOf(env.Author, from.Name)
	}
	switch env.Kind {
	case message.KindJoin, message.KindLeave:
		r.s.cfg.Publish(RoomEvent{Room: env.Conversation, Peer: from, Joined: env.Kind == message.KindJoin})
	case message.KindRetention:
		secs, _ := strconv.ParseUint(env.Body, 10, 64) // checked before it was stored
		r.s.cfg.Publish(RetentionEvent{Room: env.Conversation, Peer: from, Retention: time.Duration(secs) * time.Second})
	default:
		r.s.cfg.Publish(MessageEvent{
			ID: env.ID, From: from, To: PeerRef{ID: env.Conversation, Name: env.Conversation},
			Text: env.Body, Time: env.Time.WallTime(), Outgoing: outgoing,
			Room: env.Conversation, Mentions: r.s.Mentions(env.Conversation, env.Body),
		})
	}
}

// author writes an event of ours into room: kind with body, as the next
// of our sequence there. It refuses a message or a leave while we are
// not a member, and does nothing (nil event) for a join while we are.
func (r *rooms) author(ctx context.Context, room, kind, body string) (*message.Envelope, error) {
	if err := CheckRoom(room); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	heads, err := r.load(ctx, room)
	if err != nil {
		return nil, err
	}
	me := heads[r.s.cfg.Self]
	switch {
	case kind == message.KindJoin && me.Member:
		return nil, nil
	case kind != message.KindJoin && !me.Member:
		return nil, fmt.Errorf("%w %s", ErrNotMember, room)
	}
	ts := r.s.clock.Now()
	if !me.Last.Less(ts) {
		// Our clock is behind our own last event (the wall clock
		// stepped back over a restart): our times must still grow
		// with our sequence, or members refuse the event.
		ts = me.Last.Next()
	}
	env := &message.Envelope{
		Author: r.s.cfg.Self, AuthorName: r.s.cfg.Name(), Conversation: room, Seq: me.N + 1,
		Time: ts, Kind: kind, Body: body,
	}
	if _, err := message.Seal(env, r.s.cfg.Key); err != nil {
		return nil, err
	}
	next := store.RoomHead{N: me.N + 1, Member: kind != message.KindLeave, Last: env.Time}
	w := store.RoomWrite{
		Events: []store.RoomEvent{{Env: env, Outgoing: true}},
		Heads:  []store.RoomHeadUpdate{{Room: room, Author: r.s.cfg.Self, Head: next}},
	}
	switch kind {
	case message.KindJoin, message.KindLeave:
		w.Directory = []*message.Envelope{env}
	case message.KindRetention:
		secs, err := r.s.parseRetention(body)
		if err != nil {
			return nil, err
		}
		w.Retention = []store.RoomRetention{{Env: env, Seconds: secs}}
	}
	// Once sealed under this number the event must be kept, whatever the
	// caller does: a second event under it would be a conflict.
	if err := r.s.st.WriteRooms(context.WithoutCancel(ctx), w); err != nil {
		return nil, err
	}
	r.dirChanged(w.Directory)
	r.settingsWritten(w.Retention)
	heads[r.s.cfg.Self] = next
	if kind == message.KindJoin {
		r.since[room] = env.Time
	}
	return env, nil
}

// members lists the ids of room's members: from its log when we are in
// it, else from the directory.
func (r *rooms) members(ctx context.Context, room string) ([]string, bool, error) {
	r.mu.Lock()
	heads, err := r.load(ctx, room)
	var ids []string
	joined := heads[r.s.cfg.Self].Member
	if err == nil && joined {
		for id, h := range heads {
			if h.Member {
				ids = append(ids, id)
			}
		}
	}
	r.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	if joined {
		slices.Sort(ids)
		return ids, true, nil
	}
	ids, err = r.directoryMembers(ctx, room)
	return ids, false, err
}

// directoryMembers are those whose latest membership event of room that
// we heard of is a join.
func (r *rooms) directoryMembers(ctx context.Context, room string) ([]string, error) {
	r.mu.Lock()
	ids, ok := r.dirMembers[room]
	gen := r.dirGen
	r.mu.Unlock()
	if ok {
		return slices.Clone(ids), nil
	}
	ids, err := r.s.st.DirectoryMembers(ctx, room)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.dirGen == gen {
		if len(r.dirMembers) >= maxRooms {
			clear(r.dirMembers)
		}
		r.dirMembers[room] = ids
	}
	r.mu.Unlock()
	return slices.Clone(ids), nil
}

// dirChanged forgets the cached directory of the rooms envs are about.
// Called with mu held, once they are written.
func (r *rooms) dirChanged(envs []*message.Envelope) {
	if len(envs) == 0 {
		return
	}
	r.dirGen++
	for _, e := range envs {
		delete(r.dirMembers, e.Conversation)
	}
}

// reachable are the peers to hand room's events to and fetch them from:
// its members by our log, and those the directory says joined, whose
// join may not have reached our log yet (a node that just joined knows
// of the others only from there).
func (r *rooms) reachable(ctx context.Context, room string) ([]string, error) {
	ids, joined, err := r.members(ctx, room)
	if err != nil || !joined {
		return ids, err // not joined: members are the directory's already
	}
	dir, err := r.directoryMembers(ctx, room)
	if err != nil {
		return nil, err
	}
	for _, id := range dir {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// vector is what we hold of room, as counts per author.
func (r *rooms) vector(ctx context.Context, room string) (map[string]uint64, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	heads, err := r.load(ctx, room)
	if err != nil {
		return nil, false, err
	}
	v := make(map[string]uint64, len(heads))
	for a, h := range heads {
		if h.N > 0 {
			v[a] = h.N
		}
	}
	return v, heads[r.s.cfg.Self].Member, nil
}

// joined lists the rooms we are in.
func (r *rooms) joined(ctx context.Context) ([]string, error) {
	mine, err := r.s.st.Directory(ctx, "", r.s.cfg.Self)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range mine {
		if e.Joined {
			out = append(out, e.Room)
		}
	}
	return out, nil
}

// onlineMembers are room's members other than us that are online now.
func (r *rooms) onlineMembers(ctx context.Context, room string) ([]string, error) {
	ids, err := r.reachable(ctx, room)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		if id == r.s.cfg.Self {
			continue
		}
		if _, ok := r.s.online(id); ok {
			out = append(out, id)
		}
	}
	return out, nil
}
