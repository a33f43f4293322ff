package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// Open opens the history database at path, creating it (mode 0600) when
// there is no file or the file is empty (0 bytes: nothing can be lost by
// using it). It returns ErrNotLanchat, ErrCorrupt or ErrNewerSchema for a
// file it must not use, and leaves such a file exactly as it was: it reads
// the header itself, then looks inside through an immutable read-only
// connection, and only then opens it for writing. It starts one goroutine,
// the writer; Close stops it.
func Open(path string, opt Options) (*Store, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	ctx := context.Background()
	if err := preflight(ctx, abs, opt); err != nil {
		return nil, fmt.Errorf("open history %s: %w", abs, err)
	}
	s := &Store{
		path: abs,
		opt:  opt,
		log:  opt.Logger,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
	}
	s.wdb, err = sql.Open("sqlite", dsn(abs,
		fmt.Sprintf("_pragma=busy_timeout(%d)", opt.BusyTimeout.Milliseconds()),
		"_pragma=synchronous("+opt.Synchronous+")",
		"_pragma=journal_size_limit(67108864)", // see the package doc
		"_pragma=wal_autocheckpoint(8000)",
		"_pragma=cache_size(-16384)",
		"_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", abs, err)
	}
	// One connection, held for the Store's life: the writer's.
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if err := s.setup(ctx); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open history %s: %w", abs, err)
	}
	if s.insertStmt, err = s.wdb.Prepare(insertSQL); err == nil {
		s.ftsStmt, err = s.wdb.Prepare(ftsInsertSQL)
	}
	if err == nil {
		s.versionStmt, err = s.wdb.Prepare("PRAGMA data_version")
	}
	for st := Queued; st <= Read && err == nil; st++ {
		s.stateStmt[st], err = s.wdb.Prepare(setStateSQL(st))
	}
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open history %s: %w", abs, err)
	}
	s.rdb, err = sql.Open("sqlite", dsn(abs,
		fmt.Sprintf("_pragma=busy_timeout(%d)", opt.BusyTimeout.Milliseconds()),
		"_pragma=cache_size(-16384)",
		"_pragma=query_only(1)"))
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open history %s: %w", abs, err)
	}
	s.rdb.SetMaxOpenConns(opt.ReadConns)
	s.rdb.SetMaxIdleConns(opt.ReadConns)
	if s.summaryStmt, err = s.rdb.Prepare(outboxSummarySQL); err != nil {
		s.rdb.Close()
		s.wdb.Close()
		return nil, fmt.Errorf("open history %s: %w", abs, err)
	}
	s.wg.Add(1)
	go s.writeLoop()
	return s, nil
}

// preflight decides, without writing anything, whether the file at path
// may be opened for writing: it creates a missing file (empty, 0600),
// accepts an empty one, and otherwise checks the header and looks inside
// read-only.
func preflight(ctx context.Context, path string, opt Options) error {
	for attempt := 0; ; attempt++ {
		before, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) && attempt < 3 {
				continue // another process created it just now: look again
			}
			if err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			syncDir(filepath.Dir(path)) // the new name survives a power cut
			return nil
		}
		if err != nil {
			return err
		}
		if before.IsDir() {
			return fmt.Errorf("%w: it is a directory", ErrNotLanchat)
		}
		if !before.Mode().IsRegular() {
			return fmt.Errorf("%w: not a regular file", ErrNotLanchat)
		}
		if before.Size() == 0 {
			return nil
		}
		if err := checkHeader(path); err != nil {
			return err
		}
		if exists(path + "-wal") {
			// In use by another process, or it crashed: the log may hold
			// what the main file lacks, so only a connection that reads the
			// log can judge. setup does, under the write lock, before it
			// writes anything.
			return nil
		}
		// Nobody has the file open for writing (a writer keeps a -wal
		// file): an immutable connection reads exactly the main file and
		// creates no -wal or -shm file. Should a writer start meanwhile,
		// what we read may be torn; we notice the change and look again.
		err = probe(ctx, path, opt)
		if err == nil {
			return nil
		}
		after, serr := os.Stat(path)
		changed := serr != nil || !after.ModTime().Equal(before.ModTime()) ||
			after.Size() != before.Size() || exists(path+"-wal")
		if !changed || attempt >= 3 {
			return err
		}
	}
}

// syncDir fsyncs a directory, so that a file just created in it stays
// after a power cut. Best effort: not every system can.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// checkHeader reads the 100-byte SQLite header of a non-empty file.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [100]byte
	n, err := io.ReadFull(f, h[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) { // short: judged below
		return err
	}
	return parseHeader(h[:n])
}

// parseHeader judges the first bytes of a file (up to 100, the SQLite
// header): ErrNotLanchat, ErrCorrupt, ErrNewerSchema or nil.
func parseHeader(h []byte) error {
	if len(h) < 100 || !bytes.Equal(h[:16], []byte(sqliteMagic)) {
		return fmt.Errorf("%w: not an sqlite database", ErrNotLanchat)
	}
	if id := binary.BigEndian.Uint32(h[68:]); id != ApplicationID {
		return fmt.Errorf("%w: sqlite database of another application (application_id %#x)", ErrNotLanchat, id)
	}
	ps := int(binary.BigEndian.Uint16(h[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 || h[18] < 1 || h[18] > 2 || h[19] < 1 || h[19] > 2 ||
		h[21] != 64 || h[22] != 32 || h[23] != 32 {
		return fmt.Errorf("%w: malformed sqlite header", ErrCorrupt)
	}
	if v := int32(binary.BigEndian.Uint32(h[60:])); int(v) > latestVersion() {
		return fmt.Errorf("%w: schema version %d, this lanchat knows up to %d", ErrNewerSchema, v, latestVersion())
	}
	return nil
}

// probe looks inside a lanchat database through an immutable read-only
// connection: its identity, version and tables, and one path through
// each b-tree, which finds a truncated file or garbled root pages.
// Corruption elsewhere shows when it is read, as ErrCorrupt.
func probe(ctx context.Context, path string, opt Options) error {
	db, err := sql.Open("sqlite", dsn(path, "mode=ro", "immutable=1"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	info, err := inspect(ctx, db)
	if err != nil {
		return classify(err)
	}
	if err := info.check(); err != nil {
		return err
	}
	for _, m := range migrations() {
		if m.version > info.version {
			break
		}
		for _, q := range m.probes {
			rows, err := db.QueryContext(ctx, q)
			if err == nil {
				for rows.Next() {
				}
				err = errors.Join(rows.Err(), rows.Close())
			}
			if err != nil {
				return classify(err)
			}
		}
	}
	return nil
}

// queryer is what inspect reads through: a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inspect reads what the database says about itself.
func inspect(ctx context.Context, q queryer) (dbInfo, error) {
	var i dbInfo
	if err := q.QueryRowContext(ctx, "PRAGMA application_id").Scan(&i.appID); err != nil {
		return i, err
	}
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&i.version); err != nil {
		return i, err
	}
	rows, err := q.QueryContext(ctx, "SELECT name FROM sqlite_schema")
	if err != nil {
		return i, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return i, err
		}
		// Tables SQLite itself adds (ANALYZE, AUTOINCREMENT) say nothing.
		if name == "sqlite_sequence" || strings.HasPrefix(name, "sqlite_stat") {
			continue
		}
		i.objects = append(i.objects, name)
	}
	return i, rows.Err()
}

// setup makes the database ready, under SQLite's write lock so that
// processes opening it at once agree: it checks what the file is (again:
// the log may have held more than the main file showed), claims an empty
// file by setting the application id (before WAL mode, so that the main
// file's header says "lanchat" from the first write on), turns on WAL
// mode and runs the migrations this file lacks, each in its own
// transaction.
func (s *Store) setup(ctx context.Context) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	info, err := inspect(ctx, tx)
	if err == nil {
		err = info.check()
	}
	if err == nil && info.isEmpty() {
		_, err = tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID))
	}
	if err != nil {
		tx.Rollback()
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return classify(err)
	}

	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return classify(err)
	}
	if mode != "wal" {
		if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
			return classify(err)
		}
		if mode != "wal" {
			return fmt.Errorf("cannot use WAL mode (journal mode is %s)", mode)
		}
	}

	for _, m := range migrations() {
		if err := s.migrate(ctx, m); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", m.version, classify(err))
		}
	}
	if s.opt.maxPages > 0 {
		if _, err := s.wdb.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", s.opt.maxPages)); err != nil {
			return err
		}
	}
	return nil
}

// migrate runs m in its own transaction unless the database has it.
func (s *Store) migrate(ctx context.Context, m migration) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v >= m.version {
		return nil
	}
	if v != m.version-1 {
		return fmt.Errorf("%w: schema version %d cannot be migrated to %d", ErrCorrupt, v, m.version)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.log.Info("history schema migrated", "path", s.path, "version", m.version)
	return nil
}

// dsn is the driver's name for the database at path (absolute) with
// query parameters: SQLite's own (mode, immutable) and the driver's
// (_pragma, _txlock).
func dsn(path string, params ...string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + esc.Replace(filepath.ToSlash(path)) + "?" + strings.Join(params, "&")
}

// classify wraps SQLite's errors that callers act on in this package's
// sentinels: a malformed database in ErrCorrupt, a full disk in
// ErrDiskFull.
func classify(err error) error {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}
