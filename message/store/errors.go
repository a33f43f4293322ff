package store

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// classify is classify plus one guess: SQLite reports a failed write to a
// full disk as SQLITE_FULL when write(2) says ENOSPC, but other steps (a
// log or shared-memory file that cannot grow) come back as an I/O error.
// When the database's file system has next to no space left, such an I/O
// error is reported as ErrDiskFull too.
func (s *Store) classify(err error) error {
	err = classify(err)
	if err == nil || errors.Is(err, ErrDiskFull) || errors.Is(err, ErrCorrupt) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_IOERR && lowOnSpace(s.path) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// environmental reports whether err is a failure of the database or its
// disk rather than of one write: retrying the writes one by one would
// only fail again.
func environmental(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return true
	}
	return false
}
