package store

import (
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"lanchat/message"
)

// recordCols are the columns scanRecords reads, in its order.
const recordCols = "seq, wall, logical, author, id, conversation, kind, outgoing, state, stored_at, recipient, author_name, body, sealed, peer, claimed_wall"

// scanRecords reads every row of rows (recordCols) and closes rows.
func scanRecords(rows *sql.Rows) ([]Record, error) {
	defer rows.Close()
	var recs []Record
	for rows.Next() {
		var (
			r                  Record
			seq, wall, logical int64
			storedAt           int64
			state              int
			outgoing           bool
			claimed            sql.NullInt64
		)
		if err := rows.Scan(&seq, &wall, &logical, &r.Author, &r.ID, &r.Conversation, &r.Kind, &outgoing, &state,
			&storedAt, &r.To, &r.AuthorName, &r.Body, &r.Sealed, &r.Peer, &claimed); err != nil {
			return nil, err
		}
		if claimed.Valid {
			r.ClaimedTime = time.Unix(0, claimed.Int64)
		}
		r.Time = message.Timestamp{Wall: wall, Logical: uint32(logical)}
		r.Outgoing = outgoing
		r.State = State(state)
		r.StoredAt = time.Unix(0, storedAt)
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// sortRecords sorts records as conversations show them
// (message.OrderKey).
func sortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int { return a.OrderKey().Compare(b.OrderKey()) })
}

// OrderKey returns the key that places the record in its conversation,
// the envelope's (message.OrderKey): History returns records in its order.
func (r *Record) OrderKey() message.OrderKey {
	return message.OrderKey{Time: r.Time, Author: r.Author, ID: r.ID}
}

// orderBy and orderByDesc are message.OrderKey's order in SQL, over the
// columns that hold its fields (BINARY collation compares text bytewise,
// as Go compares strings). TestStoreOrderIsMessageOrder checks that they
// agree with it.
const (
	orderBy     = "wall, logical, author, id"
	orderByDesc = "wall DESC, logical DESC, author DESC, id DESC"
)

// Query selects messages for History.
type Query struct {
	// Peer limits the result to the direct conversation with this peer;
	// "" means every conversation.
	Peer string
	// Room limits the result to one room's history ("#general"); it
	// takes precedence over Peer.
	Room string
	// Limit is how many messages to return: the newest Limit, returned
	// oldest first ("newest last"). Zero or negative means all.
	Limit int
	// Since leaves out messages whose time (the author's clock) is before
	// it. The zero Time leaves out nothing.
	Since time.Time
	// Search, when not empty, keeps only messages whose body contains
	// every word of it, in any order, ignoring case and diacritics, across
	// all conversations (or Peer's). Any text is a valid search: quotes,
	// operators and punctuation are taken literally; a word ending in "*"
	// matches words that begin with it. Punctuation and symbols (emoji)
	// are not indexed, so a search of nothing else finds nothing.
	Search string
	// Kinds lists the message kinds to return; nil means only
	// message.KindText.
	Kinds []string
	// Before, a message id of Peer's or Room's conversation, keeps only
	// the messages shown before it: with Limit, the page of history older
	// than what a reader holds. If two messages there share the id (a
	// peer may reuse another author's), the newer is the bound, so
	// nothing is skipped. An id not in the conversation is ErrNotFound.
	// It needs Peer or Room and no Search.
	Before string
}

// History returns the messages q selects, oldest first, in the order
// conversations show them (message.Compare: time, author, id).
func (s *Store) History(ctx context.Context, q Query) ([]Record, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(q.Kinds) == 0 {
		q.Kinds = []string{message.KindText}
	}
	var (
		recs []Record
		err  error
	)
	switch {
	case q.Before != "" && (q.Search != "" || (q.Room == "" && q.Peer == "")):
		return nil, fmt.Errorf("history: a bound (before) needs one conversation and no search")
	case q.Search == "" && q.Room != "":
		recs, err = s.roomHistory(ctx, q)
	case q.Search == "" && q.Peer != "":
		recs, err = s.peerHistory(ctx, q)
	default:
		recs, err = s.scanHistory(ctx, q)
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", s.classify(err))
	}
	return recs, nil
}

// peerHistory reads one direct conversation through its index.
func (s *Store) peerHistory(ctx context.Context, q Query) ([]Record, error) {
	return s.indexedHistory(ctx, q, "messages_peer", "peer = ? AND conversation = ''", q.Peer)
}

// roomHistory reads one room through its index.
func (s *Store) roomHistory(ctx context.Context, q Query) ([]Record, error) {
	return s.indexedHistory(ctx, q, "messages_room", "conversation = ? AND conversation != ''", q.Room)
}

// indexedHistory reads the newest q.Limit messages of one conversation,
// which where (with its one argument) selects through index, oldest first.
func (s *Store) indexedHistory(ctx context.Context, q Query, index, where string, arg any) ([]Record, error) {
	args := []any{arg}
	where += " AND kind IN (" + placeholders(len(q.Kinds)) + ")"
	args = append(args, anySlice(q.Kinds)...)
	if !q.Since.IsZero() {
		where += " AND wall >= ?"
		args = append(args, sinceNanos(q.Since))
	}
	if q.Before != "" {
		var (
			wall, logical int64
			author, id    string
		)
		// Found through the (id, author) index: the conversation's own
		// would walk it down from the newest to the id.
		err := s.rdb.QueryRowContext(ctx, "SELECT wall, logical, author, id FROM messages INDEXED BY sqlite_autoindex_messages_1"+
			" WHERE id = ? AND "+where+" ORDER BY "+orderByDesc+" LIMIT 1", append([]any{q.Before}, args...)...).Scan(&wall, &logical, &author, &id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("before %q: %w in this conversation", q.Before, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		// Row values compare in conversation order (orderBy); the plain
		// bound on wall is what lets the index seek there instead of
		// walking down from the newest.
		where += " AND wall <= ? AND (wall, logical, author, id) < (?, ?, ?, ?)"
		args = append(args, wall, wall, logical, author, id)
	}
	limit := -1
	if q.Limit > 0 {
		limit = q.Limit
	}
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+recordCols+" FROM messages INDEXED BY "+index+" WHERE "+where+
		" ORDER BY "+orderByDesc+" LIMIT ?", args...)
	if err != nil {
		return nil, err
	}
	recs, err := scanRecords(rows)
	slices.Reverse(recs)
	return recs, err
}

// sinceNanos converts a Since bound to unix ns, clamped to int64.
func sinceNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0 // no message is older: walls are >= 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// scanHistory finds the newest messages of all conversations, or the
// newest matches of a search, by walking seq downwards. seq is the
// smallest free integer >= wall/1000, so a row at seq p has wall <
// (p+1)*1000: once the oldest of the newest Limit found so far has
// wall/1000 >= p, no row below p can be newer, and the walk stops. The
// walk reads only the columns that order and filter; the full records of
// the result are fetched afterwards.
func (s *Store) scanHistory(ctx context.Context, q Query) ([]Record, error) {
	since, lo := int64(math.MinInt64), int64(math.MinInt64)
	if !q.Since.IsZero() {
		since = sinceNanos(q.Since)
		lo = seqFloor(since)
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // one snapshot for both reads
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var rows *sql.Rows
	if q.Search != "" {
		match := ftsQuery(q.Search)
		if match == "" {
			return nil, nil
		}
		rows, err = tx.QueryContext(ctx, `
SELECT m.seq, m.wall, m.logical, m.author, m.id, m.kind, m.peer, m.conversation
FROM messages_fts CROSS JOIN messages m ON m.seq = messages_fts.rowid
WHERE messages_fts MATCH ?1 AND messages_fts.rowid >= ?2
ORDER BY messages_fts.rowid DESC`, match, lo)
	} else {
		rows, err = tx.QueryContext(ctx, `
SELECT seq, wall, logical, author, id, kind, peer, conversation FROM messages
WHERE seq >= ?1 ORDER BY seq DESC`, lo)
	}
	if err != nil {
		return nil, err
	}
	top := topN{n: q.Limit}
	for rows.Next() {
		var (
			k                  key
			logical            int64
			kind, peer, conver string
		)
		if err := rows.Scan(&k.seq, &k.ord.Time.Wall, &logical, &k.ord.Author, &k.ord.ID, &kind, &peer, &conver); err != nil {
			rows.Close()
			return nil, err
		}
		k.ord.Time.Logical = uint32(logical)
		if k.ord.Time.Wall >= since && slices.Contains(q.Kinds, kind) && matches(q, peer, conver) {
			top.offer(k)
		}
		if top.full() && seqFloor(top.oldest().ord.Time.Wall) >= k.seq {
			break // nothing below k.seq can be newer than what we have
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	keys := top.sorted()
	seqs := make([]int64, len(keys))
	for i, k := range keys {
		seqs[i] = k.seq
	}
	recs := make([]Record, 0, len(keys))
	for chunk := range chunks(seqs, 500) {
		rows, err := tx.QueryContext(ctx, "SELECT "+recordCols+" FROM messages WHERE seq IN ("+placeholders(len(chunk))+")", anySlice(chunk)...)
		if err != nil {
			return nil, err
		}
		rs, err := scanRecords(rows)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rs...)
	}
	sortRecords(recs)
	return recs, nil
}

// matches tells whether a message of conversation conver with peer is
// in q's conversation.
func matches(q Query, peer, conver string) bool {
	switch {
	case q.Room != "":
		return conver == q.Room
	case q.Peer != "":
		return peer == q.Peer && conver == ""
	}
	return true
}

// key is what orders a message, and where it is.
type key struct {
	seq int64
	ord message.OrderKey
}

func (a key) compare(b key) int { return a.ord.Compare(b.ord) }

// topN keeps the n newest keys offered (all of them if n <= 0), with the
// oldest of them on top of a heap.
type topN struct {
	n    int
	keys []key
}

func (t *topN) Len() int           { return len(t.keys) }
func (t *topN) Less(i, j int) bool { return t.keys[i].compare(t.keys[j]) < 0 }
func (t *topN) Swap(i, j int)      { t.keys[i], t.keys[j] = t.keys[j], t.keys[i] }
func (t *topN) Push(x any)         { t.keys = append(t.keys, x.(key)) }
func (t *topN) Pop() any {
	k := t.keys[len(t.keys)-1]
	t.keys = t.keys[:len(t.keys)-1]
	return k
}

func (t *topN) full() bool  { return t.n > 0 && len(t.keys) >= t.n }
func (t *topN) oldest() key { return t.keys[0] }

func (t *topN) offer(k key) {
	switch {
	case t.n <= 0:
		t.keys = append(t.keys, k)
	case len(t.keys) < t.n:
		heap.Push(t, k)
	case k.compare(t.keys[0]) > 0:
		t.keys[0] = k
		heap.Fix(t, 0)
	}
}

// sorted returns the keys, oldest first.
func (t *topN) sorted() []key {
	slices.SortFunc(t.keys, key.compare)
	return t.keys
}

// Get returns the message id written by author.
func (s *Store) Get(ctx context.Context, author, id string) (Record, error) {
	if s.isClosed() {
		return Record{}, ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+recordCols+" FROM messages WHERE id = ? AND author = ?", id, author)
	if err != nil {
		return Record{}, fmt.Errorf("get %s: %w", id, s.classify(err))
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return Record{}, fmt.Errorf("get %s: %w", id, s.classify(err))
	}
	if len(recs) == 0 {
		return Record{}, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	return recs[0], nil
}

// Outbox lists the outgoing messages to peer that are not yet delivered
// (Queued or Sent), oldest first, at most limit of them (all if limit <=
// 0). Oldest means message.Compare order; for our own messages that is
// the order they were written, as our clock only moves forward. Re-send
// each one's Sealed bytes: same id, same signature.
func (s *Store) Outbox(ctx context.Context, peer string, limit int) ([]Record, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+recordCols+` FROM messages INDEXED BY messages_outbox
WHERE outgoing = 1 AND state < 2 AND peer = ? ORDER BY `+orderBy+`, seq LIMIT ?`, peer, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", s.classify(err))
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", s.classify(err))
	}
	return recs, nil
}

// OutboxEntry summarises what waits in the outbox for one recipient.
type OutboxEntry struct {
	Peer   string    // the recipient
	Count  int       // how many messages wait
	Oldest time.Time // the oldest waiting message's time
}

// outboxSummarySQL is OutboxSummary's query, prepared once (summaryStmt):
// the outbox's retry check runs it every second while an online peer has
// something waiting, and parsing and planning it cost more than running it.
const outboxSummarySQL = `SELECT peer, count(*), min(wall) FROM messages INDEXED BY messages_outbox
WHERE outgoing = 1 AND state < 2 AND conversation = '' GROUP BY peer ORDER BY min(wall), peer`

// OutboxSummary lists, per recipient, how many messages wait and since
// when, the longest-waiting recipient first.
func (s *Store) OutboxSummary(ctx context.Context) ([]OutboxEntry, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	rows, err := s.summaryStmt.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox summary: %w", s.classify(err))
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var (
			e    OutboxEntry
			wall int64
		)
		if err := rows.Scan(&e.Peer, &e.Count, &wall); err != nil {
			return nil, fmt.Errorf("outbox summary: %w", s.classify(err))
		}
		e.Oldest = time.Unix(0, wall)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox summary: %w", s.classify(err))
	}
	return out, nil
}

// PendingPeers lists the peers that have messages waiting in the outbox,
// the longest-waiting first.
func (s *Store) PendingPeers(ctx context.Context) ([]string, error) {
	sum, err := s.OutboxSummary(ctx)
	if err != nil {
		return nil, err
	}
	peers := make([]string, len(sum))
	for i, e := range sum {
		peers[i] = e.Peer
	}
	return peers, nil
}

// ExternalVersion returns a number that changes whenever another
// connection to the database file (another process: a one-shot command)
// commits a write; this Store's own writes leave it alone. It costs one
// read of SQLite's shared-memory header, no table, so a loop that must
// notice what others store can ask it often and query only on a change.
func (s *Store) ExternalVersion(ctx context.Context) (int64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	var v int64
	if err := s.versionStmt.QueryRowContext(ctx).Scan(&v); err != nil {
		return 0, fmt.Errorf("data version: %w", s.classify(err))
	}
	return v, nil
}

// Count returns how many messages are stored.
func (s *Store) Count(ctx context.Context) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM messages").Scan(&n); err != nil {
		return 0, fmt.Errorf("count: %w", s.classify(err))
	}
	return n, nil
}

// Check reads the whole database and its full-text index and returns an
// error wrapping ErrCorrupt if anything is malformed or out of sync. It
// takes time in proportion to the size (seconds for a million messages)
// and holds the write lock while it checks the index: a tool for a
// "doctor" command, not for every start.
func (s *Store) Check(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("check: %w", s.classify(err))
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return fmt.Errorf("check: %w", s.classify(err))
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("check: %w", s.classify(err))
	}
	if len(problems) > 0 {
		return fmt.Errorf("check: %w: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.Exec("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
		return err
	})
	if err != nil {
		return fmt.Errorf("check full-text index: %w", err)
	}
	return nil
}
