package store

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
)

// waitFor fails the test unless cond becomes true within a few seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 5*time.Second, cond)
}

// testLogger writes to t.Log; benchmarks discard.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

// person is a test author: a key and its peer id.
type person struct {
	name string
	key  ed25519.PrivateKey
	id   string
}

// newPerson makes a deterministic person from seed.
func newPerson(name string, seed byte) person {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return person{name: name, key: key, id: mesh.IDFromPublicKey(key.Public().(ed25519.PublicKey))}
}

var (
	alice = newPerson("alice", 1)
	bob   = newPerson("bob", 2)
	carol = newPerson("carol", 3)
)

// msg seals a text message from p to to at ts.
func (p person) msg(t testing.TB, to person, ts message.Timestamp, body string) *message.Envelope {
	t.Helper()
	return p.msgKind(t, to, ts, message.KindText, body)
}

func (p person) msgKind(t testing.TB, to person, ts message.Timestamp, kind, body string) *message.Envelope {
	t.Helper()
	env := &message.Envelope{AuthorName: p.name, To: to.id, Time: ts, Kind: kind, Body: body}
	if _, err := message.Seal(env, p.key); err != nil {
		t.Fatal(err)
	}
	return env
}

// at is a timestamp s seconds after a fixed base.
func at(s float64) message.Timestamp {
	return message.Timestamp{Wall: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano() + int64(s*1e9)}
}

// testOptions are Options for tests: a logger on t.
func testOptions(t testing.TB) Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	return o
}

// openTest opens a store at a new path in a temporary directory and
// closes it when the test ends.
func openTest(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "history.db"), testOptions(t))
}

func openAt(t testing.TB, path string, opt Options) *Store {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// snapshot is a file's bytes and modification time, and which of its
// SQLite companion files exist.
type snapshot struct {
	data      []byte
	mtime     time.Time
	companion []string
}

func snap(t testing.TB, path string) snapshot {
	t.Helper()
	var s snapshot
	if fi, err := os.Stat(path); err == nil {
		s.mtime = fi.ModTime()
		if fi.Mode().IsRegular() {
			if s.data, err = os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); err == nil {
			s.companion = append(s.companion, suffix)
		}
	}
	return s
}

// assertUntouched fails unless path is as before, with no companion files.
func assertUntouched(t testing.TB, path string, before snapshot) {
	t.Helper()
	after := snap(t, path)
	if !bytes.Equal(before.data, after.data) {
		t.Errorf("%s: contents changed", path)
	}
	if !before.mtime.Equal(after.mtime) {
		t.Errorf("%s: mtime changed from %v to %v", path, before.mtime, after.mtime)
	}
	if len(after.companion) > 0 {
		t.Errorf("%s: left %v files beside it", path, after.companion)
	}
}

func ids(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func bodies(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Body
	}
	return out
}
