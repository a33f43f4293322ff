package chat

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// Query selects stored messages.
type Query struct {
	Peer   string // a name, id or id prefix, or a room ("#general"); "" for every conversation
	Limit  int    // newest N; 0 means DefaultHistoryLimit
	Since  time.Time
	Search string
	// MarkRead marks the received messages returned as read (a person
	// will see them) and queues read receipts to their authors.
	MarkRead bool
	// Before, a message id of Peer's conversation, keeps the messages
	// shown before it (store.Query.Before).
	Before string
}

// DefaultHistoryLimit is how many messages History returns without a Limit.
const DefaultHistoryLimit = 50

// Entry is one stored message with its peers named.
type Entry struct {
	ID       string
	From, To PeerRef
	Text     string
	Time     time.Time
	Outgoing bool
	State    store.State
	Room     string   // set for a room's entries
	Kind     string   // message.KindText, KindJoin, KindLeave or KindRetention (Text: the seconds)
	Mentions []string // peer ids the text names with @
	// ClaimedTime is the author's time when it was too far ahead of ours
	// to keep (Time is then the arrival); zero otherwise.
	ClaimedTime time.Time
	// Arrived is when a received message reached this node, set only
	// when that is more than message.MaxClockAhead after Time: it waited
	// in an outbox, or its author's clock is behind (a message that
	// claims to be from last year says when it really came).
	Arrived time.Time
}

// History returns stored messages, newest last.
func (s *Service) History(ctx context.Context, q Query) ([]Entry, error) {
	peer, room := "", ""
	var kinds []string
	if strings.HasPrefix(q.Peer, "#") {
		if err := CheckRoom(q.Peer); err != nil {
			return nil, err
		}
		room = q.Peer
		kinds = []string{message.KindText, message.KindJoin, message.KindLeave, message.KindRetention}
	} else if q.Peer != "" {
		p, err := s.Resolve(q.Peer)
		if err != nil {
			return nil, err
		}
		peer = p.ID
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	since := q.Since
	if room != "" {
		// Only what the room's retention keeps, pruned yet or not: every
		// member shows the same, and the witnesses stay hidden.
		cut, err := s.rooms.cutoff(ctx, room, nil)
		if err != nil {
			return nil, err
		}
		if cut > 0 && since.UnixNano() < cut {
			since = time.Unix(0, cut)
		}
	}
	recs, err := s.st.History(ctx, store.Query{Peer: peer, Room: room, Limit: limit, Since: since, Before: q.Before, Search: q.Search, Kinds: kinds})
	if err != nil {
		return nil, err
	}
	if room == "" {
		// Every conversation, or a search: a room's events past its
		// retention (its witnesses, what is not pruned yet) are not
		// shown there either.
		if recs, err = s.retained(ctx, recs); err != nil {
			return nil, err
		}
	}
	if q.MarkRead {
		// Failing to record that they were read (a full disk) must not
		// hide the messages from the person asking for them.
		if err := s.MarkRead(ctx, unreadIDs(recs)); err != nil {
			s.log.Warn("could not mark messages read", "err", err)
		}
	}
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		from := s.ref(r.Author, r.AuthorName)
		if mesh.ValidName(r.AuthorName) != nil {
			from = s.PeerRef(r.Author)
		}
		e := Entry{
			ID: r.ID, From: from, To: s.PeerRef(r.To), Text: r.Body, Time: r.Time.WallTime(),
			Outgoing: r.Outgoing, State: r.State, Kind: r.Kind, ClaimedTime: r.ClaimedTime,
		}
		if !r.Outgoing && r.StoredAt.Sub(e.Time) > message.MaxClockAhead {
			e.Arrived = r.StoredAt
		}
		if r.Conversation != "" {
			e.Room, e.To = r.Conversation, PeerRef{ID: r.Conversation, Name: r.Conversation}
			e.Mentions = s.Mentions(r.Conversation, r.Body)
		}
		out = append(out, e)
	}
	return out, nil
}

// retained leaves out the room events of recs older than their room's
// cutoff.
func (s *Service) retained(ctx context.Context, recs []store.Record) ([]store.Record, error) {
	cuts := map[string]int64{}
	out := recs[:0]
	for _, r := range recs {
		if r.Conversation != "" {
			cut, ok := cuts[r.Conversation]
			if !ok {
				var err error
				if cut, err = s.rooms.cutoff(ctx, r.Conversation, nil); err != nil {
					return nil, err
				}
				cuts[r.Conversation] = cut
			}
			if r.Time.Wall < cut {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func unreadIDs(recs []store.Record) []string {
	var ids []string
	for _, r := range recs {
		if !r.Outgoing && r.State < store.Read {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// OutboxEntry is what waits for one recipient.
type OutboxEntry struct {
	Peer   PeerRef
	Count  int
	Oldest time.Time
}

// Outbox summarises what waits for whom.
func (s *Service) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	sum, err := s.st.OutboxSummary(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]OutboxEntry, 0, len(sum))
	for _, e := range sum {
		out = append(out, OutboxEntry{Peer: s.PeerRef(e.Peer), Count: e.Count, Oldest: e.Oldest})
	}
	return out, nil
}

// MarkRead records that a person saw these received messages, and
// queues a read receipt to each author for exactly the ones that changed.
func (s *Service) MarkRead(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	changed, err := s.st.MarkRead(ctx, ids)
	if err != nil {
		return err
	}
	byAuthor := map[string][]string{}
	var order []string
	for _, r := range changed {
		if r.Outgoing || r.Kind != message.KindText || r.Conversation != "" {
			continue // a room's messages have no read receipts
		}
		if _, ok := byAuthor[r.Author]; !ok {
			order = append(order, r.Author)
		}
		byAuthor[r.Author] = append(byAuthor[r.Author], r.ID)
	}
	for _, author := range order {
		ids := byAuthor[author]
		for len(ids) > 0 {
			n := min(len(ids), maxReceiptIDs)
			body, _ := json.Marshal(receiptBody{State: "read", IDs: ids[:n]})
			if _, err := s.queue(ctx, author, KindReceipt, string(body)); err != nil {
				return err
			}
			ids = ids[n:]
		}
		s.out.resync(author) // the receipts are in the store, not in memory
	}
	return nil
}

// UnreadCount is how many messages of one direct conversation no person
// here has seen yet.
type UnreadCount struct {
	Peer   PeerRef
	Unread int
}

// DirectUnread counts the unread messages of each direct conversation
// that has some, the most first, at most limit conversations.
func (s *Service) DirectUnread(ctx context.Context, limit int) ([]UnreadCount, error) {
	cs, err := s.st.DirectUnread(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]UnreadCount, 0, len(cs))
	for _, c := range cs {
		out = append(out, UnreadCount{Peer: s.PeerRef(c.Peer), Unread: c.Count})
	}
	return out, nil
}
