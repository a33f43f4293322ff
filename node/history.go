package node

import (
	"context"

	"log/slog"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// HistoryQuery selects stored messages; Peer is a name, id or id prefix,
// or "" for every conversation.
type HistoryQuery struct {
	Peer   string
	Limit  int
	Since  time.Time
	Search string
}

// HistoryEntry is one message as `lanchat history --json` prints it.
type HistoryEntry struct {
	ID       string    `json:"id"`
	From     PeerRef   `json:"from"`
	To       PeerRef   `json:"to"`
	Text     string    `json:"text"`
	Time     time.Time `json:"time"`
	Outgoing bool      `json:"outgoing"`
	State    string    `json:"state"`
}

// OutboxEntry is what waits for one recipient.
type OutboxEntry struct {
	Peer   PeerRef   `json:"peer"`
	Count  int       `json:"count"`
	Oldest time.Time `json:"oldest"`
}

// DefaultHistoryLimit is how many messages history shows without --limit.
const DefaultHistoryLimit = 50

func (q HistoryQuery) store(peer string) store.Query {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	return store.Query{Peer: peer, Limit: limit, Since: q.Since, Search: q.Search}
}

func entries(recs []store.Record, name func(id string) PeerRef) []HistoryEntry {
	out := make([]HistoryEntry, 0, len(recs))
	for _, r := range recs {
		from := PeerRef{ID: r.Author, Name: r.AuthorName}
		if mesh.ValidName(from.Name) != nil {
			from = name(r.Author)
		}
		out = append(out, HistoryEntry{
			ID: r.ID, From: from, To: name(r.To), Text: r.Body, Time: r.Time.WallTime(),
			Outgoing: r.Outgoing, State: r.State.String(),
		})
	}
	return out
}

// HistoryFor answers `lanchat history` on a running node. With markRead,
// the received messages shown are marked read and their authors get read
// receipts.
func (n *Node) HistoryFor(ctx context.Context, q HistoryQuery, markRead bool) ([]HistoryEntry, error) {
	m, _, err := n.parts()
	if err != nil {
		return nil, err
	}
	peer := ""
	if q.Peer != "" {
		p, err := Resolve(q.Peer, n.knownPeers(m))
		if err != nil {
			return nil, err
		}
		peer = p.ID
	}
	recs, err := n.History(ctx, q.store(peer), markRead)
	if err != nil {
		return nil, err
	}
	return entries(recs, n.peerRef), nil
}

// OutboxFor answers `lanchat outbox` on a running node.
func (n *Node) OutboxFor(ctx context.Context) ([]OutboxEntry, error) {
	sum, err := n.Outbox(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]OutboxEntry, 0, len(sum))
	for _, e := range sum {
		out = append(out, OutboxEntry{Peer: n.peerRef(e.Peer), Count: e.Count, Oldest: e.Oldest})
	}
	return out, nil
}

// Offline is the data directory read without a running node: history,
// outbox and sending into the outbox. Commands use it when no node runs;
// what it queues is delivered by the next node started on the directory.
type Offline struct {
	dir      string
	id       *mesh.Identity
	chat     *chat
	contacts *contacts
}

// OpenOffline opens the data directory's history for a command; sync is
// as Config.Sync.
func OpenOffline(dir, name, sync string, log *slog.Logger) (*Offline, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	id, err := mesh.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, err
	}
	st, err := openStore(dir, sync, log)
	if err != nil {
		return nil, err
	}
	cts, err := loadContacts(dir)
	if err != nil {
		log.Warn("ignoring unreadable contacts", "err", err)
	}
	return &Offline{
		dir: dir, id: id, contacts: cts,
		chat: &chat{st: st, self: id.ID, name: func() string { return name }, key: id.Key, clock: message.NewClock(time.Now)},
	}, nil
}

// Close closes the history.
func (o *Offline) Close() error {
	o.contacts.save()
	return o.chat.st.Close()
}

func (o *Offline) peerRef(id string) PeerRef {
	if id == o.id.ID {
		return PeerRef{ID: id, Name: o.chat.name()}
	}
	if name, ok := o.contacts.name(id); ok {
		return PeerRef{ID: id, Name: name}
	}
	return PeerRef{ID: id, Name: mesh.ShortID(id)}
}

// History reads the history; see Node.HistoryFor.
func (o *Offline) History(ctx context.Context, q HistoryQuery, markRead bool) ([]HistoryEntry, error) {
	peer := ""
	if q.Peer != "" {
		p, err := resolveStored(q.Peer, o.contacts.list())
		if err != nil {
			return nil, err
		}
		peer = p.ID
	}
	recs, err := o.chat.st.History(ctx, q.store(peer))
	if err != nil {
		return nil, err
	}
	if markRead {
		if _, err := o.chat.markRead(ctx, unreadIDs(recs)); err != nil {
			return nil, err
		}
	}
	return entries(recs, o.peerRef), nil
}

// Outbox summarises what waits for whom.
func (o *Offline) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	sum, err := o.chat.st.OutboxSummary(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]OutboxEntry, 0, len(sum))
	for _, e := range sum {
		out = append(out, OutboxEntry{Peer: o.peerRef(e.Peer), Count: e.Count, Oldest: e.Oldest})
	}
	return out, nil
}
