// Package fsutil holds the file rules node, mesh and chat share for the
// data directory: files in it are opened without following a symbolic
// link (a link there is an error, not a redirection), state files are read
// with a size bound, and small state files (presence, contacts) are
// replaced atomically, so a reader or a crash sees the old file or the new
// one, never a part.
package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrSymlink is returned for a symbolic link where a file should be.
var ErrSymlink = errors.New("is a symbolic link; lanchat does not follow links in its data directory")

// ErrTooLarge is returned by ReadFileLimit for a file over its bound.
var ErrTooLarge = errors.New("file too large")

// OpenNoFollow is os.OpenFile that refuses a symbolic link as the last
// element of path, with an error wrapping ErrSymlink that names path.
func OpenNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s %w", path, ErrSymlink)
		}
		return nil, err
	}
	return f, nil
}

// ReadFileLimit reads the regular file at path, not following a symbolic
// link, and refuses one larger than max bytes (wrapping ErrTooLarge)
// without reading it. A missing file is an error matching fs.ErrNotExist.
func ReadFileLimit(path string, max int64) ([]byte, error) {
	f, err := OpenNoFollow(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", path, ErrTooLarge, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max { // it grew since the Stat
		return nil, fmt.Errorf("%s: %w: over %d bytes", path, ErrTooLarge, max)
	}
	return b, nil
}

// WriteFileAtomic replaces path with data (mode 0600): a temporary file
// beside it, created exclusively and not through a link, then a rename
// (which replaces a link at path rather than writing where it points).
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := createTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// createTemp is os.CreateTemp with O_NOFOLLOW and mode 0600.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 10 {
		var r [8]byte
		rand.Read(r[:])
		f, err := OpenNoFollow(filepath.Join(dir, prefix+hex.EncodeToString(r[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create a temporary file in %s: too many collisions", dir)
}
