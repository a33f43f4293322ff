package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"lanchat/message"
)

// RoomHead is what this node holds of one author's events in a room:
// all of 1..N, or, where a retention pruned the older ones, all from a
// witness up to N; whether the last membership event among them is a
// join; and the time of event N, which the author's next must be after.
type RoomHead struct {
	N      uint64
	Member bool
	Last   message.Timestamp // zero when event N is not held (N is 0)
}

// RoomWrite is one transaction of room changes, which the chat service
// builds after checking each event against the room's heads: the events
// to add, the heads they move to, membership events for the directory
// and conflicting events kept as evidence. Either all of it is stored or
// none.
type RoomWrite struct {
	Events    []RoomEvent
	Heads     []RoomHeadUpdate
	Directory []*message.Envelope // membership events (room.join, room.leave); only a later rseq replaces what is held
	Conflicts []RoomConflict      // at most MaxConflictsPerAuthor are kept per room and author; the rest are dropped
	Retention []RoomRetention     // room.retention events for the room's settings, whether or not in Events; at most MaxRetentionEvents are kept per room, the latest
}

// RoomRetention is a room.retention event and the duration its body
// says, in seconds (0: keep everything), checked by the chat service.
type RoomRetention struct {
	Env     *message.Envelope
	Seconds uint64
}

// How many retention events are kept per room, in the room's order: the
// latest retentionLatest, and, before them, those from the one that
// brought the cutoff furthest while it still does, up to
// MaxRetentionEvents in all. The one in force is the last; the earlier
// ones say how far a shorter setting let members prune before a longer
// one replaced it (the chat service's cutoff). Keeping only the latest
// would let a member who sets "for ever" a few times over make the room
// forget what was pruned.
const (
	MaxRetentionEvents = 256
	retentionLatest    = 16
)

// trimRetention drops room's retention events that no longer matter:
// what it keeps is a suffix of the room's settings, so each one's end
// (the next one's time) is known.
func trimRetention(tx *wtx, room string) error {
	rows, err := tx.Query(`SELECT wall, logical, author, id, seconds FROM room_retention WHERE room = ?
ORDER BY wall, logical, author, id`, room)
	if err != nil {
		return err
	}
	type setting struct {
		wall, logical int64
		author, id    string
		secs          int64
	}
	var ss []setting
	for rows.Next() {
		var s setting
		if err := rows.Scan(&s.wall, &s.logical, &s.author, &s.id, &s.secs); err != nil {
			rows.Close()
			return err
		}
		ss = append(ss, s)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	n := len(ss)
	from := max(0, n-retentionLatest)
	if from == 0 {
		return nil
	}
	best, at := int64(math.MinInt64), -1
	if last := ss[n-1]; last.secs > 0 {
		best = time.Now().UnixNano() - last.secs*int64(time.Second)
	}
	for i := 0; i < n-1; i++ {
		if ss[i].secs > 0 {
			if c := ss[i+1].wall - ss[i].secs*int64(time.Second); c > best {
				best, at = c, i
			}
		}
	}
	if at >= 0 && at < from {
		from = at
	}
	from = max(from, n-MaxRetentionEvents)
	if from == 0 {
		return nil
	}
	k := ss[from]
	_, err = tx.Exec(`DELETE FROM room_retention WHERE room = ?1 AND (wall, logical, author, id) < (?2, ?3, ?4, ?5)`,
		room, k.wall, k.logical, k.author, k.id)
	return err
}

// RoomEvent is an event to add to a room's log. Outgoing ones (ours) are
// stored as Sent, received ones as Delivered; a received event of kind
// join or leave is stored Read (there is nothing to read).
type RoomEvent struct {
	Env      *message.Envelope
	Outgoing bool
	Read     bool // stored as read: history from before we joined is not news
}

// RoomHeadUpdate sets one author's head in a room.
type RoomHeadUpdate struct {
	Room, Author string
	Head         RoomHead
}

// RoomConflict is an event that reuses a sequence number its author had
// already used for another event, and the peer that passed it on.
type RoomConflict struct {
	Env  *message.Envelope
	From string
}

// errRoomEvent: an event that is not a room event.
var errRoomEvent = errors.New("not a room event")

// ErrIDReused: a room event carries the id of another event of its
// author (another room, sequence number or a direct message). Only its
// author can sign that, and no honest one does; storing it would move
// the author's head past a row that was skipped as a duplicate.
var ErrIDReused = errors.New("message id already used by another event of its author")

// WriteRooms stores w in one transaction. An event whose (id, author) is
// stored already is skipped; one that takes a sequence number already
// held by another event fails the whole write (the chat service checks
// heads first, so this means a bug or a race it lost).
func (s *Store) WriteRooms(ctx context.Context, w RoomWrite) error {
	rows := make([]row, len(w.Events))
	for i, ev := range w.Events {
		if ev.Env == nil || !message.ValidRoom(ev.Env.Conversation) || ev.Env.Seq == 0 || ev.Env.Seq > maxRseq {
			return fmt.Errorf("store room event: %w", errRoomEvent)
		}
		r, err := newRow(ev.Env, ev.Outgoing)
		if err != nil {
			return fmt.Errorf("store room event: %w", err)
		}
		switch {
		case ev.Outgoing:
			r.state = Sent
		case ev.Env.Kind != message.KindText, ev.Read:
			r.state = Read
		}
		rows[i] = r
	}
	for _, rt := range w.Retention {
		if env := rt.Env; env == nil || len(env.Sealed()) == 0 || !message.ValidRoom(env.Conversation) || env.Kind != message.KindRetention || rt.Seconds > maxRseq {
			return fmt.Errorf("store room retention: %w", errRoomEvent)
		}
	}
	for _, env := range w.Directory {
		if env == nil || len(env.Sealed()) == 0 || !message.ValidRoom(env.Conversation) || env.Seq == 0 || env.Seq > maxRseq ||
			(env.Kind != message.KindJoin && env.Kind != message.KindLeave) {
			return fmt.Errorf("store room directory: %w", errRoomEvent)
		}
	}
	err := s.write(ctx, func(tx *wtx) error {
		now := time.Now()
		for _, r := range rows {
			ins, err := insert(tx, r, now)
			if err != nil {
				return err
			}
			if !ins {
				// Skipped as a duplicate (id, author): it must be this
				// very event, not another one under the same id, or
				// the heads below would count a row that is not there.
				if err := sameRoomEvent(tx, r.env); err != nil {
					return err
				}
			}
		}
		for _, h := range w.Heads {
			if _, err := tx.Exec(`INSERT INTO room_heads (room, author, n, member) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (room, author) DO UPDATE SET n = excluded.n, member = excluded.member`,
				h.Room, h.Author, int64(h.Head.N), h.Head.Member); err != nil {
				return fmt.Errorf("room head: %w", err)
			}
		}
		for _, env := range w.Directory {
			if _, err := tx.Exec(`INSERT INTO room_directory (room, author, rseq, joined, sealed) VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (room, author) DO UPDATE SET rseq = excluded.rseq, joined = excluded.joined, sealed = excluded.sealed
WHERE excluded.rseq > room_directory.rseq`,
				env.Conversation, env.Author, int64(env.Seq), env.Kind == message.KindJoin, env.Sealed()); err != nil {
				return fmt.Errorf("room directory: %w", err)
			}
		}
		for _, c := range w.Conflicts {
			e := c.Env
			if _, err := tx.Exec(`INSERT INTO room_conflicts (room, author, rseq, id, from_peer, received_at, sealed)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
WHERE (SELECT count(*) FROM room_conflicts WHERE room = ?1 AND author = ?2) < ?8
ON CONFLICT DO NOTHING`,
				e.Conversation, e.Author, int64(e.Seq), e.ID, c.From, now.UnixNano(), e.Sealed(), MaxConflictsPerAuthor); err != nil {
				return fmt.Errorf("room conflict: %w", err)
			}
		}
		for _, rt := range w.Retention {
			e := rt.Env
			if _, err := tx.Exec(`INSERT INTO room_retention (room, wall, logical, author, id, seconds, sealed)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING`,
				e.Conversation, e.Time.Wall, int64(e.Time.Logical), e.Author, e.ID, int64(rt.Seconds), e.Sealed()); err != nil {
				return fmt.Errorf("room retention: %w", err)
			}
			if err := trimRetention(tx, e.Conversation); err != nil {
				return fmt.Errorf("room retention: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store room events: %w", err)
	}
	return nil
}

// sameRoomEvent checks that the row held under env's (id, author) is
// env's place in its room's log.
func sameRoomEvent(tx *wtx, env *message.Envelope) error {
	var (
		room string
		seq  int64
	)
	err := tx.QueryRow("SELECT conversation, rseq FROM messages WHERE id = ?1 AND author = ?2", env.ID, env.Author).Scan(&room, &seq)
	if err != nil {
		return fmt.Errorf("store room event %s: %w", env.ID, err)
	}
	if room != env.Conversation || uint64(seq) != env.Seq {
		return fmt.Errorf("store room event %s (seq %d of %s): %w", env.ID, env.Seq, env.Conversation, ErrIDReused)
	}
	return nil
}

// MaxConflictsPerAuthor is how many conflicting events are kept as
// evidence per author and room: one proves the author signed two events
// under one number; an author may sign any number of them, and without a
// bound they would fill the disk unseen.
const MaxConflictsPerAuthor = 8

// maxRseq is the largest sequence number SQLite's integers hold.
const maxRseq = 1<<63 - 1

// RoomHeads returns every author's head in room.
func (s *Store) RoomHeads(ctx context.Context, room string) (map[string]RoomHead, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT h.author, h.n, h.member, m.wall, m.logical FROM room_heads h
LEFT JOIN messages m INDEXED BY messages_room_seq ON m.conversation = h.room AND m.conversation != '' AND m.author = h.author AND m.rseq = h.n
WHERE h.room = ?`, room)
	if err != nil {
		return nil, fmt.Errorf("room heads: %w", s.classify(err))
	}
	defer rows.Close()
	heads := map[string]RoomHead{}
	for rows.Next() {
		var (
			author        string
			n             int64
			member        bool
			wall, logical sql.NullInt64
		)
		if err := rows.Scan(&author, &n, &member, &wall, &logical); err != nil {
			return nil, err
		}
		heads[author] = RoomHead{N: uint64(n), Member: member, Last: message.Timestamp{Wall: wall.Int64, Logical: uint32(logical.Int64)}}
	}
	return heads, rows.Err()
}

// RoomEventAt returns the id of author's event seq in room, or "" if it
// is not held.
func (s *Store) RoomEventAt(ctx context.Context, room, author string, seq uint64) (string, error) {
	if seq > maxRseq {
		return "", nil
	}
	var id string
	err := s.rdb.QueryRowContext(ctx, `SELECT id FROM messages INDEXED BY messages_room_seq
WHERE conversation = ?1 AND conversation != '' AND author = ?2 AND rseq = ?3`, room, author, int64(seq)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("room event: %w", s.classify(err))
	}
	return id, nil
}

// RoomPage returns up to limit of author's events in room after seq
// after, as sealed envelopes in ascending sequence, and no more than
// maxBytes of them beyond the first (maxBytes <= 0: no bound), so that
// what a catch-up server holds per request is bounded in bytes, not
// only in events of up to 64 KiB each.
func (s *Store) RoomPage(ctx context.Context, room, author string, after uint64, limit, maxBytes int) ([][]byte, error) {
	if after >= maxRseq || limit <= 0 {
		return nil, nil
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT sealed FROM messages INDEXED BY messages_room_seq
WHERE conversation = ?1 AND conversation != '' AND author = ?2 AND rseq > ?3 ORDER BY rseq LIMIT ?4`, room, author, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("room page: %w", s.classify(err))
	}
	defer rows.Close()
	var out [][]byte
	size := 0
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		if size += len(b); maxBytes > 0 && len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// DirectoryEntry is one author's latest membership event in a room.
type DirectoryEntry struct {
	Room, Author string
	Seq          uint64
	Joined       bool
	Sealed       []byte
}

// Directory returns the membership events held: of room, or of every
// room when room is "", or only author's when author is set.
func (s *Store) Directory(ctx context.Context, room, author string) ([]DirectoryEntry, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT room, author, rseq, joined, sealed FROM room_directory
WHERE (?1 = '' OR room = ?1) AND (?2 = '' OR author = ?2) ORDER BY room, author`, room, author)
	if err != nil {
		return nil, fmt.Errorf("room directory: %w", s.classify(err))
	}
	defer rows.Close()
	var out []DirectoryEntry
	for rows.Next() {
		var (
			e   DirectoryEntry
			seq int64
		)
		if err := rows.Scan(&e.Room, &e.Author, &seq, &e.Joined, &e.Sealed); err != nil {
			return nil, err
		}
		e.Seq = uint64(seq)
		out = append(out, e)
	}
	return out, rows.Err()
}

// RoomUnread counts, per room, the received messages not yet read.
func (s *Store) RoomUnread(ctx context.Context) (map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT conversation, count(*) FROM messages INDEXED BY messages_unread
WHERE outgoing = 0 AND state < 3 AND conversation != '' AND kind = 'text' GROUP BY conversation`)
	if err != nil {
		return nil, fmt.Errorf("room unread: %w", s.classify(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			room string
			n    int
		)
		if err := rows.Scan(&room, &n); err != nil {
			return nil, err
		}
		out[room] = n
	}
	return out, rows.Err()
}

// RoomUnreadIn counts the received messages of room not yet read.
func (s *Store) RoomUnreadIn(ctx context.Context, room string) (int, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM messages INDEXED BY messages_unread
WHERE conversation = ?1 AND conversation != '' AND outgoing = 0 AND state < 3 AND kind = 'text'`, room).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("room unread: %w", s.classify(err))
	}
	return n, nil
}

// RoomConflicts returns the evidence kept for room.
func (s *Store) RoomConflicts(ctx context.Context, room string) ([]RoomConflict, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT from_peer, sealed FROM room_conflicts WHERE room = ? ORDER BY author, rseq, id", room)
	if err != nil {
		return nil, fmt.Errorf("room conflicts: %w", s.classify(err))
	}
	defer rows.Close()
	var out []RoomConflict
	for rows.Next() {
		var (
			from   string
			sealed []byte
		)
		if err := rows.Scan(&from, &sealed); err != nil {
			return nil, err
		}
		env, err := message.Open(sealed)
		if err != nil {
			return nil, fmt.Errorf("room conflict: %w", err)
		}
		out = append(out, RoomConflict{Env: env, From: from})
	}
	return out, rows.Err()
}

// DirectoryCounts says whether room is in the directory, how many rooms
// the directory holds, and how many of them author has a membership
// event in: what a quota on strangers' rooms needs.
func (s *Store) DirectoryCounts(ctx context.Context, room, author string) (known bool, rooms, byAuthor int, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT
	EXISTS (SELECT 1 FROM room_directory WHERE room = ?1),
	(SELECT count(DISTINCT room) FROM room_directory),
	(SELECT count(*) FROM room_directory INDEXED BY room_directory_author WHERE author = ?2)`, room, author).Scan(&known, &rooms, &byAuthor)
	if err != nil {
		return false, 0, 0, fmt.Errorf("room directory: %w", s.classify(err))
	}
	return known, rooms, byAuthor, nil
}

// DirectoryMembers lists the authors whose latest membership event of
// room is a join, without reading the events.
func (s *Store) DirectoryMembers(ctx context.Context, room string) ([]string, error) {
	return s.strings(ctx, "room directory", "SELECT author FROM room_directory WHERE room = ? AND joined = 1 ORDER BY author", room)
}

// DirectoryRooms lists the rooms the directory holds, by name, without
// reading their events.
func (s *Store) DirectoryRooms(ctx context.Context) ([]string, error) {
	return s.strings(ctx, "room directory", "SELECT DISTINCT room FROM room_directory ORDER BY room")
}

// strings runs a query of one text column and returns its values; what
// names the query in errors.
func (s *Store) strings(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, s.classify(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// RoomRetentions returns the retention events kept for room, in the
// room's order (the one in force last).
func (s *Store) RoomRetentions(ctx context.Context, room string) ([]RoomRetention, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seconds, sealed FROM room_retention WHERE room = ?
ORDER BY wall, logical, author, id`, room)
	if err != nil {
		return nil, fmt.Errorf("room retention: %w", s.classify(err))
	}
	defer rows.Close()
	var out []RoomRetention
	for rows.Next() {
		var (
			secs   int64
			sealed []byte
		)
		if err := rows.Scan(&secs, &sealed); err != nil {
			return nil, err
		}
		env, err := message.Open(sealed)
		if err != nil {
			return nil, fmt.Errorf("room retention: %w", err)
		}
		out = append(out, RoomRetention{Env: env, Seconds: uint64(secs)})
	}
	return out, rows.Err()
}

// RetentionRooms lists the rooms with a retention event kept.
func (s *Store) RetentionRooms(ctx context.Context) ([]string, error) {
	return s.strings(ctx, "room retention", "SELECT DISTINCT room FROM room_retention ORDER BY room")
}

// PruneRoom deletes the events of room older than cutoff (a wall time,
// unix ns) but one per author: the newest of those, its witness, which
// stays (marked read) so that the author's log still has a start a
// member catching up can be handed, and whose time shows that what came
// before it was prunable too (an author's times grow with its sequence).
// The head event of an author is never deleted, so heads stay as they
// are; conflicts kept as evidence and the directory stay too. It deletes
// in transactions of at most pruneBatch rows, so that the first prune
// of a large room does not hold up every other write for seconds, and
// returns how many events it deleted.
func (s *Store) PruneRoom(ctx context.Context, room string, cutoff int64) (int, error) {
	ws, err := roomWitnesses(ctx, s.rdb, room, cutoff)
	if err != nil {
		return 0, fmt.Errorf("prune room: %w", s.classify(err))
	}
	total := 0
	for len(ws) > 0 {
		n := 0
		err := s.write(ctx, func(tx *wtx) (err error) {
			n, err = pruneRoom(tx, room, ws, pruneBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune room: %w", err)
		}
		total += n
		if n < pruneBatch {
			break
		}
	}
	return total, nil
}

// pruneBatch is the most rows one prune transaction deletes. Measured on
// 2 shared cores, pruning 90,000 of a room's 100,000 events: one
// transaction took 1.7 s, every other write waiting throughout; batches
// of 5000 made a concurrent one-event write wait up to 0.7 s, of 1000 up
// to 0.17 s (3.3 s in all).
const pruneBatch = 1000

// witness is an author's newest event older than a cutoff.
type witness struct {
	author string
	seq    int64
}

// roomWitnesses finds each author's witness in room for cutoff. The
// witnesses of a cutoff stay witnesses while the batches delete below
// them: events arriving meanwhile are newer.
func roomWitnesses(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, room string, cutoff int64) ([]witness, error) {
	rows, err := q.QueryContext(ctx, `SELECT author, max(rseq) FROM messages INDEXED BY messages_room
WHERE conversation = ?1 AND conversation != '' AND wall < ?2 GROUP BY author`, room, cutoff)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ws []witness
	for rows.Next() {
		var w witness
		if err := rows.Scan(&w.author, &w.seq); err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, rows.Err()
}

// pruneRoom deletes, in tx, up to limit of room's events below the
// witnesses ws, and marks the witnesses read; it returns how many it
// deleted.
func pruneRoom(tx *wtx, room string, ws []witness, limit int) (int, error) {
	// Rows written earlier in this transaction are indexed only at its
	// commit; the delete trigger takes their bodies out of the full-text
	// index, which must hold them by then, or the index no longer
	// matches its content (SQLite calls it corrupt). A failed request
	// rolls the whole transaction back, this too.
	if err := tx.indexBodies(); err != nil {
		return 0, err
	}
	tx.index = tx.index[:0]
	deleted := 0
	for _, w := range ws {
		if deleted < limit {
			res, err := tx.Exec(`DELETE FROM messages WHERE seq IN (SELECT seq FROM messages INDEXED BY messages_room_seq
WHERE conversation = ?1 AND conversation != '' AND author = ?2 AND rseq < ?3 ORDER BY rseq LIMIT ?4)`, room, w.author, w.seq, limit-deleted)
			if err != nil {
				return 0, err
			}
			n, _ := res.RowsAffected()
			deleted += int(n)
		}
		if _, err := tx.Exec(`UPDATE messages SET state = ?4 WHERE conversation = ?1 AND conversation != '' AND author = ?2 AND rseq = ?3
AND outgoing = 0 AND state < ?4`, room, w.author, w.seq, Read); err != nil {
			return 0, err
		}
	}
	return deleted, nil
}
