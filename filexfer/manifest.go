package filexfer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"
)

// TransferID names one transfer; the sender picks it at random and keeps
// it across every attempt, so the recipient can tell a resume from a new
// offer.
type TransferID [idLen]byte

// NewTransferID returns a random id.
func NewTransferID() TransferID {
	var id TransferID
	rand.Read(id[:])
	return id
}

func (id TransferID) String() string { return hex.EncodeToString(id[:]) }

// ParseTransferID reads the form String writes.
func ParseTransferID(s string) (TransferID, error) {
	var id TransferID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != idLen {
		return id, fmt.Errorf("transfer id %q: want %d hex digits", s, 2*idLen)
	}
	copy(id[:], b)
	return id, nil
}

// Entry is one file or folder of a manifest.
type Entry struct {
	// Path is the relative slash path; its first element is the base name
	// of what was sent.
	Path string
	// Dir marks a folder; a folder has no data.
	Dir bool
	// Size is the file's length in bytes.
	Size int64
	// Mode holds the permission bits only.
	Mode fs.FileMode
	// ModTime is the modification time in Unix nanoseconds.
	ModTime int64
	// SourceID is the sender's inode number: with Size and ModTime it
	// tells the recipient whether a resumed file is still the same file.
	SourceID uint64
}

func modeOf(m uint32) fs.FileMode { return fs.FileMode(m) & fs.ModePerm }

// same reports whether two versions of an entry are the same source.
func (e Entry) same(o Entry) bool {
	return e.Size == o.Size && e.ModTime == o.ModTime && e.SourceID == o.SourceID
}

// Skipped is something found under a sent folder that is not sent.
type Skipped struct {
	Path   string // relative slash path, as an entry's
	Reason string
}

// Source is what a sender sends: the manifest and a way back to each
// file. Symbolic links and special files (devices, pipes, sockets) found
// below a sent folder are not followed and not sent; they are listed in
// Skipped. Files are read through an os.Root of each sent folder, so a
// file swapped for a link after the scan cannot lead out of it either.
// A Source is reused across the attempts of one transfer: the chunk
// hashes it computed are kept, so a resume need not read again what the
// recipient already holds.
type Source struct {
	// ID is the transfer's id.
	ID TransferID
	// Entries is the manifest, folders before what they hold.
	Entries []Entry
	// Skipped lists what was left out, and why.
	Skipped []Skipped

	roots []*os.Root
	locs  []loc // per entry

	mu     sync.Mutex                 // guards hashes and dirs
	hashes map[uint32][][hashLen]byte // per file index: chunk hashes, zero where unknown
	shift  byte                       // the chunk size the hashes were made for
	dirs   map[dirKey]*os.File        // folders opened through their root, during a Send
}

type dirKey struct {
	root int
	dir  string
}

type loc struct {
	root int    // index into roots
	rel  string // path below that root, native separators
}

// ErrSourceGone: a file of the offer was removed (or replaced by something
// that is not a file) since it was offered; trying again cannot help.
var ErrSourceGone = errors.New("a file to send is gone")

// ErrTooMany: a source with more entries than the sender allows.
var ErrTooMany = errors.New("too many files")

// NewSource scans paths (files or folders) into a manifest of at most
// maxEntries entries. A path named on the command line may itself be a
// symbolic link (the user chose it); links below a folder are skipped.
func NewSource(paths []string, maxEntries int) (*Source, error) {
	s := &Source{ID: NewTransferID(), hashes: map[uint32][][hashLen]byte{}}
	tops := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			s.Close()
			return nil, err
		}
		top := filepath.Base(abs)
		if tops[top] {
			s.Close()
			return nil, fmt.Errorf("two sources named %q: send them in two transfers", top)
		}
		tops[top] = true
		switch {
		case fi.IsDir():
			err = s.addDir(abs, top, maxEntries)
		case fi.Mode().IsRegular():
			err = s.addFile(filepath.Dir(abs), top, fi, maxEntries)
		default:
			err = fmt.Errorf("%s: not a regular file or folder", p)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	if len(s.Entries) == 0 {
		return nil, errors.New("nothing to send")
	}
	return s, nil
}

func (s *Source) openRoot(dir string) (int, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	s.roots = append(s.roots, r)
	return len(s.roots) - 1, nil
}

func (s *Source) add(e Entry, l loc, max int) error {
	if len(s.Entries) >= max {
		return fmt.Errorf("%w: more than %d", ErrTooMany, max)
	}
	if len(e.Path) > MaxName {
		s.Skipped = append(s.Skipped, Skipped{Path: e.Path, Reason: "name too long"})
		return nil
	}
	s.Entries = append(s.Entries, e)
	s.locs = append(s.locs, l)
	return nil
}

func (s *Source) addFile(dir, name string, fi fs.FileInfo, max int) error {
	ri, err := s.openRoot(dir)
	if err != nil {
		return err
	}
	return s.add(entryOf(name, fi), loc{ri, name}, max)
}

func (s *Source) addDir(abs, top string, max int) error {
	ri, err := s.openRoot(abs)
	if err != nil {
		return err
	}
	return fs.WalkDir(s.roots[ri].FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := top
		if p != "." {
			rel = path.Join(top, p)
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			s.Skipped = append(s.Skipped, Skipped{Path: rel, Reason: "symbolic link, not followed"})
			return nil
		case d.IsDir(), d.Type().IsRegular():
		default:
			s.Skipped = append(s.Skipped, Skipped{Path: rel, Reason: "not a regular file"})
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return s.add(entryOf(rel, fi), loc{ri, filepath.FromSlash(p)}, max)
	})
}

func entryOf(rel string, fi fs.FileInfo) Entry {
	e := Entry{Path: rel, Dir: fi.IsDir(), Mode: fi.Mode().Perm(), ModTime: fi.ModTime().UnixNano(), SourceID: inodeOf(fi)}
	if !e.Dir {
		e.Size = fi.Size()
	}
	return e
}

// Total is the sum of the file sizes.
func (s *Source) Total() int64 {
	var t int64
	for _, e := range s.Entries {
		t += e.Size
	}
	return t
}

// Files counts the files (not folders).
func (s *Source) Files() int {
	n := 0
	for _, e := range s.Entries {
		if !e.Dir {
			n++
		}
	}
	return n
}

// open opens entry i for reading, through its root: by the handle of its
// folder, opened once through the root, where it can (one openat, where
// os.Root walks every element each time), else by the root's own walk,
// which also takes a file that became a link inside the root.
func (s *Source) open(i uint32) (*os.File, error) {
	l := s.locs[i]
	dir, base := filepath.Split(l.rel)
	if d := s.dir(l.root, dir); d != nil {
		f, err := openIn(d, base)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
	}
	return s.roots[l.root].Open(l.rel)
}

// dir returns the handle of folder dir below root r, nil if it cannot be
// opened. At most 256 are kept; closeDirs drops them after a Send.
func (s *Source) dir(r int, dir string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := dirKey{r, dir}
	if d := s.dirs[k]; d != nil {
		return d
	}
	if len(s.dirs) >= 256 {
		s.closeDirsLocked()
	}
	if dir == "" {
		dir = "."
	}
	d, err := s.roots[r].Open(dir)
	if err != nil {
		return nil
	}
	if s.dirs == nil {
		s.dirs = map[dirKey]*os.File{}
	}
	s.dirs[k] = d
	return d
}

func (s *Source) closeDirs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeDirsLocked()
}

func (s *Source) closeDirsLocked() {
	for k, d := range s.dirs {
		d.Close()
		delete(s.dirs, k)
	}
}

// restat refreshes the files' sizes, times and ids before an attempt, so
// the recipient sees what changed since the last one.
func (s *Source) restat() error {
	for i, e := range s.Entries {
		if e.Dir {
			continue
		}
		l := s.locs[i]
		fi, err := s.roots[l.root].Lstat(l.rel)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrSourceGone, e.Path, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is no longer a regular file", ErrSourceGone, e.Path)
		}
		n := entryOf(e.Path, fi)
		if !n.same(e) {
			s.forget(uint32(i))
		}
		s.Entries[i] = n
	}
	return nil
}

// forget drops what is known of file i's chunks: it changed.
func (s *Source) forget(i uint32) {
	s.mu.Lock()
	delete(s.hashes, i)
	s.mu.Unlock()
}

// chunkHashes returns file i's chunk hash list for n chunks, allocated
// on first use.
func (s *Source) chunkHashes(i uint32, n uint32, shift byte) [][hashLen]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shift != shift {
		clear(s.hashes)
		s.shift = shift
	}
	h := s.hashes[i]
	if uint32(len(h)) != n {
		h = make([][hashLen]byte, n)
		s.hashes[i] = h
	}
	return h
}

// Close releases the folders' handles.
func (s *Source) Close() error {
	s.closeDirs()
	for _, r := range s.roots {
		r.Close()
	}
	s.roots = nil
	return nil
}

// mtime is an entry's time as a time.Time.
func (e Entry) mtime() time.Time { return time.Unix(0, e.ModTime) }
