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
	stored_at, recipient, author_name, body, sealed)
VALUES (
	CASE WHEN NOT EXISTS (SELECT 1 FROM messages WHERE seq = ?1) THEN ?1
	ELSE coalesce(
		(SELECT a.seq + 1 FROM (SELECT seq FROM messages WHERE seq >= ?1 ORDER BY seq LIMIT 64) a
			WHERE NOT EXISTS (SELECT 1 FROM messages b WHERE b.seq = a.seq + 1)
			ORDER BY a.seq LIMIT 1),
		(SELECT max(seq) + 1 FROM messages))
	END,
	?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
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

// ftsInsertSQL indexes the body of the message just stored.
const ftsInsertSQL = "INSERT INTO messages_fts (rowid, body) VALUES (?, ?)"

// insert stores r in tx, queues its body for the full-text index, and
// reports whether it was new.
func insert(tx *wtx, r row, now time.Time) (bool, error) {
	e := r.env
	res, err := tx.insertStmt().Exec(seqFloor(e.Time.Wall), e.Time.Wall, int64(e.Time.Logical), e.Author, e.ID,
		e.Conversation, e.Kind, r.outgoing, int(r.state), now.UnixNano(), e.To, e.AuthorName, e.Body, r.sealed)
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
	ins, err := s.add(ctx, []*message.Envelope{env}, false)
	if err != nil {
		return false, err
	}
	return ins[0], nil
}

// AddReceivedBatch stores many received envelopes in one transaction, as
// AddReceived does one: a room's catch-up, or an import. inserted[i] tells
// whether envs[i] was new.
func (s *Store) AddReceivedBatch(ctx context.Context, envs []*message.Envelope) (inserted []bool, err error) {
	return s.add(ctx, envs, false)
}

// AddOutgoing stores a message we wrote, as Queued: it is in the outbox
// until SetState moves it to Delivered. It is durable when AddOutgoing
// returns nil, so the message may then be reported as sent. Adding the
// same message again changes nothing.
func (s *Store) AddOutgoing(ctx context.Context, env *message.Envelope) error {
	_, err := s.add(ctx, []*message.Envelope{env}, true)
	return err
}

func (s *Store) add(ctx context.Context, envs []*message.Envelope, outgoing bool) ([]bool, error) {
	rows := make([]row, len(envs))
	for i, env := range envs {
		r, err := newRow(env, outgoing)
		if err != nil {
			return nil, fmt.Errorf("store message: %w", err)
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
	return s.setState(ctx, "", id, st)
}

// ApplyReceipt applies a receipt from peer (Delivered or Read) to the
// outgoing message id: as SetState, but only if peer is the message's
// recipient, so that nobody else can mark our messages read.
func (s *Store) ApplyReceipt(ctx context.Context, peer, id string, st State) (bool, error) {
	if peer == "" {
		return false, errors.New("apply receipt: no peer")
	}
	return s.setState(ctx, peer, id, st)
}

// setStateSQL moves one outgoing message (?1) forward to st, if from
// then only when ?2 is its recipient.
func setStateSQL(st State, from bool) string {
	q := fmt.Sprintf("UPDATE messages SET state = %d WHERE id = ?1 AND outgoing = 1 AND state < %d", int(st), int(st))
	if from {
		q += " AND recipient = ?2"
	}
	return q
}

func (s *Store) setState(ctx context.Context, peer, id string, st State) (bool, error) {
	if !st.Valid() {
		return false, fmt.Errorf("set state of %s: invalid state %d", id, int(st))
	}
	var changed bool
	err := s.write(ctx, func(tx *wtx) error {
		stmt, args := s.stateStmt[st], []any{id}
		if peer != "" {
			stmt, args = s.stateFromStmt[st], append(args, peer)
		}
		res, err := tx.Stmt(stmt).Exec(args...)
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
