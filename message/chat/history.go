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
	Kind     string   // message.KindText, KindJoin or KindLeave
	Mentions []string // peer ids the text names with @
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
		kinds = []string{message.KindText, message.KindJoin, message.KindLeave}
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
	recs, err := s.st.History(ctx, store.Query{Peer: peer, Room: room, Limit: limit, Since: q.Since, Before: q.Before, Search: q.Search, Kinds: kinds})
	if err != nil {
		return nil, err
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
		from := PeerRef{ID: r.Author, Name: r.AuthorName}
		if mesh.ValidName(from.Name) != nil {
			from = s.PeerRef(r.Author)
		}
		e := Entry{
			ID: r.ID, From: from, To: s.PeerRef(r.To), Text: r.Body, Time: r.Time.WallTime(),
			Outgoing: r.Outgoing, State: r.State, Kind: r.Kind,
		}
		if r.Conversation != "" {
			e.Room, e.To = r.Conversation, PeerRef{ID: r.Conversation, Name: r.Conversation}
			e.Mentions = s.Mentions(r.Conversation, r.Body)
		}
		out = append(out, e)
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
