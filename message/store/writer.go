package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Group commit. Every write (a call of AddReceived, AddOutgoing,
// SetState, MarkRead, ...) becomes a request queued for the writer
// goroutine, which owns the one write connection. The writer takes every
// request queued (at most MaxBatch), runs them one after another in one
// transaction and commits once: one fsync for the lot. Only after the
// commit does each caller learn its result, so a call that returned nil is
// durable. Requests that arrive while a commit is under way wait for the
// next one, so the batch size follows the load by itself; before it
// starts a transaction the writer yields to the goroutines ready to run,
// which may be about to submit (gather), and BatchWindow adds a short
// wait for more when the load is concurrent.

// Request states: a caller whose context ends may still withdraw its
// request while it is queued, never once the writer has taken it.
const (
	reqQueued int32 = iota
	reqTaken
	reqWithdrawn
)

// request is one write waiting for the writer.
type request struct {
	// run does the write inside the batch transaction. It may run twice
	// (see runBatch), so it must set, not accumulate, what it reports.
	run   func(tx *wtx) error
	state atomic.Int32
	done  chan error // receives the result once; buffered
}

// write submits run to the writer and waits until it is committed (nil)
// or has failed. If ctx ends while the request is still queued it is
// withdrawn and ctx's error returned; once the writer has it, write waits
// for the outcome, so that an error always means "not stored".
func (s *Store) write(ctx context.Context, run func(tx *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{run: run, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return ctx.Err()
		}
		return <-r.done
	}
}

// take removes up to max requests from the queue, skipping withdrawn ones.
func (s *Store) take(batch []*request, max int) []*request {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.queue {
		if len(batch) == max {
			break
		}
		n++
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			batch = append(batch, r)
		}
	}
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch
}

// writeLoop is the writer goroutine: it commits batches until Close, then
// finishes what is queued and returns.
func (s *Store) writeLoop() {
	defer s.wg.Done()
	var batch []*request
	prev := 0 // size of the previous batch
	var timer *time.Timer
	for {
		batch = s.gather(s.take(batch[:0], s.opt.MaxBatch))
		if len(batch) == 0 {
			select {
			case <-s.wake:
				continue
			case <-s.quit:
				if batch = s.take(batch[:0], s.opt.MaxBatch); len(batch) == 0 {
					return // closed: no request can be queued any more
				}
			}
		}
		if prev > 1 && s.opt.BatchWindow > 0 && len(batch) < min(prev, s.opt.MaxBatch) {
			// Concurrent load: wait a moment for as many writes as the
			// last transaction carried, as their callers are likely
			// about to submit their next ones.
			if timer == nil {
				timer = time.NewTimer(s.opt.BatchWindow)
			} else {
				timer.Reset(s.opt.BatchWindow)
			}
		wait:
			for len(batch) < min(prev, s.opt.MaxBatch) {
				select {
				case <-s.wake:
					batch = s.take(batch, s.opt.MaxBatch)
				case <-timer.C:
					break wait
				case <-s.quit:
					break wait
				}
			}
			timer.Stop()
			batch = s.take(batch, s.opt.MaxBatch)
		}
		s.runBatch(batch)
		prev = len(batch)
		clear(batch)
	}
}

// runBatch runs the requests in one transaction and tells each caller the
// result. If one request fails for a reason of its own, the transaction
// is rolled back and each request is run again alone, so one bad write
// does not fail the others; a failure of the database (a full disk, a
// lock held too long, corruption) fails them all at once.
func (s *Store) runBatch(batch []*request) {
	err := s.runTx(batch)
	if err == nil || len(batch) == 1 || !errors.As(err, new(*requestError)) || environmental(err) {
		err = s.classify(err)
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	s.log.Debug("batch failed; retrying its writes one by one", "writes", len(batch), "err", err)
	for _, r := range batch {
		r.done <- s.classify(s.runTx([]*request{r}))
	}
}

// requestError is the error of one request's run, as opposed to the
// transaction's.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// wtx is the write transaction requests run in.
type wtx struct {
	*sql.Tx
	s     *Store
	ins   *sql.Stmt // the Store's insertStmt in this transaction; nil until used
	index []ftsRow  // bodies to index before commit
}

// ftsRow is a message body for the full-text index.
type ftsRow struct {
	seq  int64
	body string
}

// insertStmt returns insertSQL in this transaction.
func (tx *wtx) insertStmt() *sql.Stmt {
	if tx.ins == nil {
		tx.ins = tx.Stmt(tx.s.insertStmt)
	}
	return tx.ins
}

// indexBodies adds the bodies queued by the requests to the full-text
// index, in ascending rowid order: FTS5 buffers a transaction's postings
// in memory only while rowids ascend, and writes a new segment each time
// one does not (one per message, were they indexed as they come).
func (tx *wtx) indexBodies() error {
	if len(tx.index) == 0 {
		return nil
	}
	slices.SortFunc(tx.index, func(a, b ftsRow) int { return cmp.Compare(a.seq, b.seq) })
	pairs := make([][2]any, 0, len(tx.index))
	for _, r := range tx.index {
		if !utf8.ValidString(r.body) {
			// JSON would index U+FFFD instead of the bytes stored, and
			// the index would no longer match its content: index it
			// alone. (Envelopes that opened or were sealed are valid.)
			if _, err := tx.Exec(ftsRowSQL, r.seq, r.body); err != nil {
				return fmt.Errorf("index message bodies: %w", err)
			}
			continue
		}
		pairs = append(pairs, [2]any{r.seq, r.body})
	}
	if len(pairs) == 0 {
		return nil
	}
	list, err := json.Marshal(pairs)
	if err == nil {
		_, err = tx.Stmt(tx.s.ftsStmt).Exec(list)
	}
	if err != nil {
		return fmt.Errorf("index message bodies: %w", err)
	}
	return nil
}

// gatherYields bounds how often gather lets other goroutines run.
const gatherYields = 4

// gather lets the goroutines that are ready to run do so before a
// transaction starts, and takes what they queued meanwhile, for as long
// as that grows the batch (at most gatherYields times). When the CPUs
// are busy, writers that are about to submit (a sender sealing its
// next message) then join this transaction instead of each making the
// next one: on 2 cores shared by two nodes that made a tenth as many
// transactions and cut the CPU spent per message stored by about 5%
// (BenchmarkPairCPU). With nothing else to run it costs nothing: the
// yield returns at once and the batch does not grow.
func (s *Store) gather(batch []*request) []*request {
	for range gatherYields {
		if len(batch) == 0 || len(batch) >= s.opt.MaxBatch {
			return batch
		}
		n := len(batch)
		runtime.Gosched()
		if batch = s.take(batch, s.opt.MaxBatch); len(batch) == n {
			return batch
		}
	}
	return batch
}

// runTx runs the requests in one write transaction and commits it.
func (s *Store) runTx(batch []*request) error {
	ctx := context.Background() // a taken request is finished, not abandoned: see write
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	w := &wtx{Tx: tx, s: s}
	for _, r := range batch {
		if err := r.run(w); err != nil {
			tx.Rollback()
			if rerr := (*requestError)(nil); errors.As(err, &rerr) {
				return err
			}
			return &requestError{err}
		}
	}
	if err := w.indexBodies(); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
