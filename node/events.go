package node

import (
	"context"
	"sync"
	"time"

	"lanchat/mesh"
	"lanchat/message/chat"
	"lanchat/node/api"
)

// hub numbers the node's events and hands them to subscribers. A
// subscription starts with a snapshot taken under the same lock that
// numbers events, so a subscriber sees every event after its snapshot
// exactly once. Each subscriber has a bounded queue; one that falls
// behind is dropped with a Resync rather than allowed to stall the node
// or to miss events silently.
type hub struct {
	mu     sync.Mutex // guards the fields below, and orders publishing
	seq    uint64
	peers  map[string]api.Peer // every peer as the events so far describe it
	subs   map[*subscriber]struct{}
	closed bool
	// rooms, if set, lists the rooms for a snapshot; it is read under mu,
	// so that no room event falls between the snapshot and the stream.
	rooms func() []api.Room
	// unread, if set, counts the direct conversations' unread messages
	// for a snapshot, read under mu as rooms is.
	unread func() []api.DirectUnread
}

type subscriber struct {
	ch   chan api.Event // closed when the subscriber is dropped or the hub closes
	over bool           // dropped for falling behind
}

func newHub() *hub {
	return &hub{peers: map[string]api.Peer{}, subs: map[*subscriber]struct{}{}}
}

func (h *hub) publish(ev api.Event) { h.publishPeer(ev, nil) }

// publishPeer publishes ev and, with peer, records the peer's state it
// describes for later snapshots, under the same lock.
func (h *hub) publishPeer(ev api.Event, peer *api.Peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.seq++
	ev = ev.WithSeq(h.seq)
	if peer != nil {
		h.peers[peer.ID] = *peer
	}
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			s.over = true
			close(s.ch)
			delete(h.subs, s)
		}
	}
}

// subscribe registers a subscriber and returns its snapshot, numbered
// with the last event before it. self is read under the lock too, so a
// ready event is either in the snapshot or after it.
func (h *hub) subscribe(self func() api.Self, size int) (*subscriber, api.Snapshot, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, api.Snapshot{}, false
	}
	s := &subscriber{ch: make(chan api.Event, size)}
	h.subs[s] = struct{}{}
	snap := api.Snapshot{Type: api.TypeSnapshot, Seq: h.seq, Self: self(), Peers: make([]api.Peer, 0, len(h.peers)), Rooms: []api.Room{}}
	if h.rooms != nil {
		snap.Rooms = h.rooms()
	}
	snap.Unread = []api.DirectUnread{}
	if h.unread != nil {
		snap.Unread = h.unread()
	}
	now := time.Now()
	for _, p := range h.peers {
		if p.Online() {
			p.LastSeen = now
		}
		snap.Peers = append(snap.Peers, p)
	}
	sortAPIPeers(snap.Peers)
	return s, snap, true
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// close ends every subscription once what was queued for it is read.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		close(s.ch)
		delete(h.subs, s)
	}
}

// serve runs one subscription: the snapshot, then the events, until ctx
// ends, fn fails, the subscriber falls behind or the hub closes.
func (h *hub) serve(ctx context.Context, self func() api.Self, size int, fn func(api.Event) error) error {
	s, snap, ok := h.subscribe(self, size)
	if !ok {
		return api.ErrClosed
	}
	defer h.unsubscribe(s)
	if err := fn(snap); err != nil {
		return err
	}
	last := snap.Seq
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-s.ch:
			if !ok {
				h.mu.Lock()
				over, missed := s.over, int(h.seq-last) // every event since the last it was given
				h.mu.Unlock()
				if !over {
					return api.ErrClosed
				}
				r := api.Resync{Dropped: missed, Reason: "events came faster than this subscriber read them"}
				if err := fn(r.WithSeq(last)); err != nil {
					return err
				}
				return api.ErrResync
			}
			last = ev.EventSeq()
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
}

// Conversions from the domain's events to the API's.

func presenceEvent(ev mesh.Event) api.Presence {
	return api.Presence{
		Type:       api.TypePresence,
		Peer:       api.PeerRef{ID: ev.Peer.ID, Name: ev.Peer.Name},
		State:      ev.Peer.State.String(),
		StatusText: ev.Peer.Status,
		Change:     string(ev.Change),
		Addr:       addrString(ev.Peer),
		Verified:   ev.Peer.Verified,
		Reachable:  ev.Peer.Reachable,
		SeenBy:     ev.Peer.SeenBy,
	}
}

// chatEvent converts; room events carry the room's counts, which info
// looks up.
func chatEvent(ev chat.Event, info func(room string) api.Room) api.Event {
	switch v := ev.(type) {
	case chat.MessageEvent:
		return api.Message{
			Type: api.TypeMessage, ID: v.ID, From: ref(v.From), To: ref(v.To),
			Text: v.Text, Time: v.Time, Outgoing: v.Outgoing, Room: v.Room, Mentions: v.Mentions,
			ClaimedTime: optTime(v.ClaimedTime),
		}
	case chat.RoomEvent:
		change := api.RoomLeft
		if v.Joined {
			change = api.RoomJoined
		}
		return api.RoomChange{Type: api.TypeRoom, Room: info(v.Room), Peer: ref(v.Peer), Change: change}
	case chat.RetentionEvent:
		return api.RoomChange{Type: api.TypeRoom, Room: info(v.Room), Peer: ref(v.Peer), Change: api.RoomRetention}
	case chat.ReceiptEvent:
		return api.Receipt{Type: api.TypeReceipt, ID: v.ID, State: v.State.String(), Peer: ref(v.Peer)}
	case chat.TypingEvent:
		return api.Typing{Type: api.TypeTyping, Peer: ref(v.From), Room: v.Room}
	}
	return nil
}

func ref(r chat.PeerRef) api.PeerRef {
	return api.PeerRef{ID: r.ID, Name: r.Name, Trusted: r.Trust.Trusted, Warning: r.Trust.Warning}
}
