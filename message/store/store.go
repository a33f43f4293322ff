package store

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"lanchat/message"
)

// Errors callers act on, matched with errors.Is; the errors returned wrap
// them with detail.
var (
	// ErrNotLanchat means the file exists and is not a lanchat history
	// database: not SQLite at all, or SQLite written by another application
	// (another application_id, or tables lanchat does not know). The file
	// is left exactly as it was.
	ErrNotLanchat = errors.New("not a lanchat database")

	// ErrCorrupt means SQLite reports the database as malformed. Open
	// leaves such a file as it was; the user must move it aside (and may
	// try the sqlite3 shell's .recover on a copy).
	ErrCorrupt = errors.New("database corrupt")

	// ErrNewerSchema means the database was written by a newer lanchat
	// whose schema this one does not know. The file is left as it was.
	ErrNewerSchema = errors.New("database written by a newer lanchat")

	// ErrDiskFull means a write failed because the disk (or the quota) is
	// full. Nothing stored before is lost, and the failed write left no
	// trace: retry once there is space.
	ErrDiskFull = errors.New("disk full")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store closed")

	// ErrNotFound is returned by Get for a message that is not stored.
	ErrNotFound = errors.New("message not found")
)

// State is where a message is on its way to being read. A state only ever
// moves forward: Queued < Sent < Delivered < Read.
type State int

const (
	// Queued: an outgoing message stored and waiting in the outbox.
	Queued State = iota
	// Sent: written to the recipient's stream, not yet acknowledged. It
	// stays in the outbox: the acknowledgement may have been lost.
	Sent
	// Delivered: the recipient's node stored it (an ok or duplicate
	// acknowledgement). Every received message is Delivered when stored.
	Delivered
	// Read: a person saw it.
	Read
)

var stateNames = [...]string{"queued", "sent", "delivered", "read"}

// String returns "queued", "sent", "delivered" or "read".
func (s State) String() string {
	if s < Queued || s > Read {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// Valid reports whether s is one of the four states.
func (s State) Valid() bool { return s >= Queued && s <= Read }

// MarshalText implements encoding.TextMarshaler, for --json output.
func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("invalid state %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if string(b) == n {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown state %q", b)
}

// Record is one stored message.
type Record struct {
	ID         string // message id, 32 hex digits; unique per author
	Author     string // peer id of the writer
	AuthorName string // the writer's display name when writing
	To         string // recipient's peer id ("" for a room message)
	// Peer is the other party of a direct conversation: To for an outgoing
	// message, Author for an incoming one.
	Peer string
	// Conversation is "" for direct messages (reserved for rooms).
	Conversation string
	// Time is the author's hybrid logical clock when writing, or, for a
	// message whose clock was too far ahead of ours, the time it arrived
	// (see AddReceivedBatchAt): the time it is ordered and shown by.
	Time message.Timestamp
	// ClaimedTime is the author's own time when Time is not it, else zero.
	ClaimedTime time.Time
	Kind        string // message.KindText for a chat message
	Body        string
	// Sealed is the signed envelope exactly as it travels; re-sending it
	// re-sends the same message (same id, same signature).
	Sealed   []byte
	Outgoing bool      // we wrote it
	State    State     // see State
	StoredAt time.Time // when this node stored it (local clock)
}

// Envelope turns the record back into an envelope by opening its sealed
// bytes, which checks the signature again.
func (r *Record) Envelope() (*message.Envelope, error) { return message.Open(r.Sealed) }

// Options configure a Store. The zero value of each field means its
// default, which DefaultOptions spells out.
type Options struct {
	// Logger receives the store's logs. Nil discards them.
	Logger *slog.Logger
	// BatchWindow is how long a write transaction may wait for more
	// writes to join it: when the previous transaction carried several,
	// the next waits up to BatchWindow until it has as many (their callers
	// are about to write again). Writes that arrive while a transaction
	// commits join the next one anyway, which batches well by itself: zero,
	// the default, never waits. (Measured on 2 cores with 64 concurrent
	// callers, a 1 ms window cost a third of the throughput.)
	BatchWindow time.Duration
	// MaxBatch is the most writes (calls) one transaction carries.
	MaxBatch int
	// Synchronous is SQLite's synchronous setting in WAL mode: "FULL" (the
	// default) fsyncs the log at every commit, so a stored message
	// survives a power cut too; "NORMAL" survives a killed process or a
	// crashed program but may lose the last commits (never corrupt the
	// database) if the machine loses power. See the package doc.
	Synchronous string
	// BusyTimeout is how long a write waits for another process that
	// holds the database's write lock (a one-shot command) before failing.
	BusyTimeout time.Duration
	// ReadConns is how many connections serve reads concurrently.
	ReadConns int

	// maxPages caps the database at this many pages (PRAGMA
	// max_page_count), which makes writes fail as on a full disk; tests
	// use it.
	maxPages int
}

// DefaultOptions returns the defaults: no batch window, at most 512
// writes per transaction, synchronous FULL, 5 s busy timeout and 4 read
// connections.
func DefaultOptions() Options {
	return Options{
		MaxBatch:    512,
		Synchronous: "FULL",
		BusyTimeout: 5 * time.Second,
		ReadConns:   4,
	}
}

// withDefaults fills in the zero fields and checks the others.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = d.MaxBatch
	}
	if o.Synchronous == "" {
		o.Synchronous = d.Synchronous
	}
	o.Synchronous = strings.ToUpper(o.Synchronous)
	if o.Synchronous != "FULL" && o.Synchronous != "NORMAL" {
		return o, fmt.Errorf("synchronous %q: want FULL or NORMAL", o.Synchronous)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = d.BusyTimeout
	}
	if o.ReadConns <= 0 {
		o.ReadConns = d.ReadConns
	}
	return o, nil
}

// Store is the history and outbox of one node, kept in one SQLite file.
// It is safe for concurrent use.
type Store struct {
	path string
	opt  Options
	log  *slog.Logger
	wdb  *sql.DB // the one write connection, used only by the writer goroutine after Open (and versionStmt)
	rdb  *sql.DB // read-only connections

	insertStmt *sql.Stmt // insertSQL, prepared on wdb
	ftsStmt    *sql.Stmt // ftsInsertSQL, prepared on wdb
	// stateStmt is setStateSQL for each state, prepared on wdb. The state
	// is written into the SQL rather than bound, because a bound value in
	// "state < ?" (which the outbox's partial index depends on) makes
	// SQLite re-plan the statement at every execution, costing more than
	// running it.
	stateStmt [Read + 1]*sql.Stmt
	// versionStmt is "PRAGMA data_version", prepared on wdb: on the
	// connection that makes every write of this Store, the number moves
	// only when another connection (another process) commits. It runs
	// outside the writer's transactions, taking the connection for a few
	// microseconds between them.
	versionStmt *sql.Stmt
	summaryStmt *sql.Stmt // outboxSummarySQL, prepared on rdb

	wake chan struct{} // signals the writer that the queue grew; buffered 1
	quit chan struct{} // closed by Close: the writer drains the queue and ends
	wg   sync.WaitGroup

	mu     sync.Mutex // guards the fields below
	queue  []*request // writes waiting for the writer
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Close finishes the writes already submitted, stops the writer and
// closes the database (checkpointing its log into the main file). Later
// calls return ErrClosed. It is idempotent; every call waits for the
// first to finish.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		close(s.quit)
		s.wg.Wait()
		errs := []error{s.insertStmt.Close(), s.ftsStmt.Close(), s.versionStmt.Close(), s.summaryStmt.Close()}
		for st := range s.stateStmt {
			errs = append(errs, s.stateStmt[st].Close())
		}
		s.closeErr = errors.Join(append(errs, s.rdb.Close(), s.wdb.Close())...)
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("close history %s: %w", s.path, s.closeErr)
		}
	})
	return s.closeErr
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
