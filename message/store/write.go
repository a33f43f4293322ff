package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"lanchat/message"
)

// insertSQL stores one message unless (id, author) is stored already.
// Its seq is ?1, the wall time in microseconds, if that is free (nearly
// always); else the first free integer after the run of taken ones that
// starts at ?1, if that run is shorter than 64; else one more than the
// largest seq. Any free seq >= ?1 keeps History right (see scanHistory);
// staying close to ?1 keeps it fast, and the bound keeps a flood of
// messages with one timestamp from costing quadratic time.
const insertSQL = `
INSERT INTO messages (seq, wall, logical, author, id, conversation, kind, outgoing, state,
	stored_at, recipient, author_name, body, sealed, rseq, claimed_wall)
VALUES (
	CASE WHEN NOT EXISTS (SELECT 1 FROM messages WHERE seq = ?1) THEN ?1
	ELSE coalesce(
		(SELECT a.seq + 1 FROM (SELECT seq FROM messages WHERE seq >= ?1 ORDER BY seq LIMIT 64) a
			WHERE NOT EXISTS (SELECT 1 FROM messages b WHERE b.seq = a.seq + 1)
			ORDER BY a.seq LIMIT 1),
		(SELECT max(seq) + 1 FROM messages))
	END,
	?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
ON CONFLICT (id, author) DO NOTHING`

// seqFloor is the seq a message of wall time wall (ns) asks for: the
// wall time in microseconds. seq >= seqFloor(wall) always holds.
func seqFloor(wall int64) int64 { return wall / 1000 }

// row is an envelope's columns, checked before it is queued.
type row struct {
	env      *message.Envelope
	sealed   []byte
	outgoing bool
	state    State
	// at, when not zero, is the time the row is ordered and shown by
	// instead of the author's claim (a clock too far ahead: see
	// AddReceivedAt); the claim is kept as claimed_wall.
	at message.Timestamp
}

// time is the timestamp the row is ordered by.
func (r row) time() message.Timestamp {
	if r.at.IsZero() {
		return r.env.Time
	}
	return r.at
}

// claimed is the claimed_wall column: the author's wall time when the row
// is ordered by another, else NULL.
func (r row) claimed() any {
	if r.at.IsZero() {
		return nil
	}
	return r.env.Time.Wall
}

func newRow(env *message.Envelope, outgoing bool) (row, error) {
	if env == nil {
		return row{}, errors.New("nil envelope")
	}
	sealed := env.Sealed()
	if len(sealed) == 0 {
		return row{}, fmt.Errorf("message %s is not sealed", env.ID)
	}
	if env.ID == "" || env.Author == "" || env.Time.Wall < 0 || env.Kind == "" {
		return row{}, fmt.Errorf("message %q: %w", env.ID, message.ErrMalformed)
	}
	st := Delivered // we have it: stored on this node
	if outgoing {
		st = Queued
	}
	return row{env: env, sealed: sealed, outgoing: outgoing, state: st}, nil
}

// ftsInsertSQL indexes the bodies of messages just stored: ?1 is a JSON
// array of [seq, body] pairs, indexed in its order. One statement for a
// transaction's bodies costs less than one per body.
const ftsInsertSQL = "INSERT INTO messages_fts (rowid, body) SELECT value ->> 0, value ->> 1 FROM json_each(?1)"

// ftsRowSQL indexes one body.
const ftsRowSQL = "INSERT INTO messages_fts (rowid, body) VALUES (?, ?)"

// insert stores r in tx, queues its body for the full-text index, and
// reports whether it was new.
func insert(tx *wtx, r row, now time.Time) (bool, error) {
	e, t := r.env, r.time()
	res, err := tx.insertStmt().Exec(seqFloor(t.Wall), t.Wall, int64(t.Logical), e.Author, e.ID,
		e.Conversation, e.Kind, r.outgoing, int(r.state), now.UnixNano(), e.To, e.AuthorName, e.Body, r.sealed, int64(e.Seq), r.claimed())
	if err != nil {
		return false, fmt.Errorf("store message %s: %w", e.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return false, err
	}
	tx.index = append(tx.index, ftsRow{seq, e.Body})
	return true, nil
}

// AddReceived stores a received envelope (env.Sealed() holds its bytes)
// as Delivered. It is idempotent by (author, id): storing a message again
// returns inserted=false and changes nothing. When it returns nil the
// message is durable: on disk, fsynced unless Options.Synchronous is
// NORMAL. Many concurrent callers share one transaction (see Options).
func (s *Store) AddReceived(ctx context.Context, env *message.Envelope) (inserted bool, err error) {
	ins, err := s.add(ctx, []*message.Envelope{env}, nil, false)
	if err != nil {
		return false, err
	}
	return ins[0], nil
}

// AddReceivedBatch stores many received envelopes in one transaction, as
// AddReceived does one: a room's catch-up, or an import. inserted[i] tells
// whether envs[i] was new.
func (s *Store) AddReceivedBatch(ctx context.Context, envs []*message.Envelope) (inserted []bool, err error) {
	return s.add(ctx, envs, nil, false)
}

// AddReceivedBatchAt is AddReceivedBatch where envs[i] is ordered and
// shown at at[i] instead of its author's time when at[i] is not zero: a
// message stamped by a clock too far ahead of ours takes its arrival time,
// so that it cannot sit at the end of a conversation for an hour. The
// author's claim stays in the signed envelope and in Record.ClaimedTime.
// len(at) must be len(envs).
func (s *Store) AddReceivedBatchAt(ctx context.Context, envs []*message.Envelope, at []message.Timestamp) (inserted []bool, err error) {
	if len(at) != len(envs) {
		return nil, fmt.Errorf("store message: %d times for %d messages", len(at), len(envs))
	}
	return s.add(ctx, envs, at, false)
}

// AddOutgoing stores a message we wrote, as Queued: it is in the outbox
// until SetState moves it to Delivered. It is durable when AddOutgoing
// returns nil, so the message may then be reported as sent. Adding the
// same message again changes nothing.
func (s *Store) AddOutgoing(ctx context.Context, env *message.Envelope) error {
	_, err := s.add(ctx, []*message.Envelope{env}, nil, true)
	return err
}

func (s *Store) add(ctx context.Context, envs []*message.Envelope, at []message.Timestamp, outgoing bool) ([]bool, error) {
	rows := make([]row, len(envs))
	for i, env := range envs {
		r, err := newRow(env, outgoing)
		if err != nil {
			return nil, fmt.Errorf("store message: %w", err)
		}
		if at != nil {
			if at[i].Wall < 0 {
				return nil, fmt.Errorf("store message %q: %w", env.ID, message.ErrMalformed)
			}
			r.at = at[i]
		}
		rows[i] = r
	}
	ins := make([]bool, len(rows))
	if len(rows) == 0 {
		return ins, nil
	}
	err := s.write(ctx, func(tx *wtx) error {
		now := time.Now()
		for i, r := range rows {
			var err error
			if ins[i], err = insert(tx, r, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ins, nil
}

// SetState moves an outgoing message's state forward, never back, and
// reports whether it changed. Moving it to Delivered or Read takes it out
// of the outbox. An unknown id changes nothing.
func (s *Store) SetState(ctx context.Context, id string, st State) (bool, error) {
	return s.setState(ctx, id, st)
}

// ApplyReceipt applies a receipt from peer (Delivered or Read) to the
// outgoing message id: as SetState, but only if peer is the message's
// recipient, so that nobody else can mark our messages read.
func (s *Store) ApplyReceipt(ctx context.Context, peer, id string, st State) (bool, error) {
	changed, err := s.ApplyReceipts(ctx, peer, []string{id}, st)
	return len(changed) > 0, err
}

// maxReceiptChunk is how many ids one statement of ApplyReceipts takes.
const maxReceiptChunk = 500

// ApplyReceipts moves our outgoing messages to peer whose ids are in ids
// forward to st (never back), and returns the ids whose state changed, in
// the order of ids. Messages to another recipient, received messages and
// unknown ids are left alone: only a message's recipient can say it was
// delivered or read. It is one transaction, with one statement per 500
// ids, so a sender records a whole batch of acknowledgements
// (ApplyReceipts(peer, ids, Delivered)) for about the cost of one write.
func (s *Store) ApplyReceipts(ctx context.Context, peer string, ids []string, st State) (changed []string, err error) {
	if peer == "" {
		return nil, errors.New("apply receipts: no peer")
	}
	if !st.Valid() {
		return nil, fmt.Errorf("apply receipts: invalid state %d", int(st))
	}
	distinct := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			distinct = append(distinct, id)
		}
	}
	if len(distinct) == 0 {
		return nil, nil
	}
	var got map[string]bool // nil: every id changed
	err = s.write(ctx, func(tx *wtx) error {
		got = nil // set, not accumulated: run may run twice
		// Nearly always every id moves (a batch of acknowledgements), and
		// the count of rows changed tells so; RETURNING, which names them,
		// costs as much again. So: without it, and only if not every id
		// moved, undo and again with it.
		if _, err := tx.Exec("SAVEPOINT receipts"); err != nil {
			return err
		}
		n, err := applyReceipts(tx, peer, distinct, st, nil)
		if err == nil && n != len(distinct) {
			got = make(map[string]bool)
			if _, err = tx.Exec("ROLLBACK TO receipts"); err == nil {
				_, err = applyReceipts(tx, peer, distinct, st, got)
			}
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec("RELEASE receipts")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply receipts: %w", err)
	}
	if got == nil {
		return distinct, nil
	}
	for _, id := range distinct {
		if got[id] {
			changed = append(changed, id)
		}
	}
	return changed, nil
}

// applyReceipts runs receiptSQL for ids, maxReceiptChunk at a time, and
// returns how many rows changed; with got, it also records their ids.
func applyReceipts(tx *wtx, peer string, ids []string, st State, got map[string]bool) (int, error) {
	changed := 0
	for chunk := range chunks(ids, maxReceiptChunk) {
		q := receiptSQL(st, len(chunk), got != nil)
		args := append([]any{peer}, anySlice(chunk)...)
		if got == nil {
			res, err := tx.Exec(q, args...)
			if err != nil {
				return 0, err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return 0, err
			}
			changed += int(n)
			continue
		}
		rows, err := tx.Query(q, args...)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, err
			}
			got[id] = true
			changed++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return 0, err
		}
	}
	return changed, nil
}

// receiptSQL moves the outgoing messages to the first parameter whose ids
// are the n parameters after it forward to st, naming them if returning
// (with RETURNING). The state is in the SQL, not bound: see
// Store.stateStmt.
func receiptSQL(st State, n int, returning bool) string {
	q := fmt.Sprintf("UPDATE messages SET state = %d WHERE outgoing = 1 AND state < %d AND recipient = ? AND id IN (%s)",
		int(st), int(st), placeholders(n))
	if returning {
		q += " RETURNING id"
	}
	return q
}

// setStateSQL moves one outgoing message (?1) forward to st.
func setStateSQL(st State) string {
	return fmt.Sprintf("UPDATE messages SET state = %d WHERE id = ?1 AND outgoing = 1 AND state < %d", int(st), int(st))
}

func (s *Store) setState(ctx context.Context, id string, st State) (bool, error) {
	if !st.Valid() {
		return false, fmt.Errorf("set state of %s: invalid state %d", id, int(st))
	}
	var changed bool
	err := s.write(ctx, func(tx *wtx) error {
		res, err := tx.Stmt(s.stateStmt[st]).Exec(id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("set state of %s: %w", id, err)
	}
	return changed, nil
}

// MarkRead marks received messages as read and returns those that
// changed (that were not read before), so that read receipts go out for
// exactly those. Unknown ids and outgoing messages are ignored.
func (s *Store) MarkRead(ctx context.Context, ids []string) ([]Record, error) {
	var changed []Record
	err := s.write(ctx, func(tx *wtx) error {
		changed = changed[:0]
		for chunk := range chunks(ids, 500) {
			q := "UPDATE messages SET state = 3 WHERE outgoing = 0 AND state < 3 AND id IN (" +
				placeholders(len(chunk)) + ") RETURNING " + recordCols
			rows, err := tx.Query(q, anySlice(chunk)...)
			if err != nil {
				return err
			}
			recs, err := scanRecords(rows)
			if err != nil {
				return err
			}
			changed = append(changed, recs...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mark read: %w", err)
	}
	sortRecords(changed)
	return changed, nil
}

// chunks yields s in pieces of at most n.
func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anySlice[T any](s []T) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
