package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"lanchat/message"
)

// rawDB opens path with the driver directly, as another program would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func rawExec(t testing.TB, path string, stmts ...string) {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func pragma(t testing.TB, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s := openAt(t, path, testOptions(t))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	for _, c := range []struct{ pragma, want string }{
		{"application_id", fmt.Sprint(ApplicationID)},
		{"user_version", fmt.Sprint(latestVersion())},
		{"journal_mode", "wal"},
	} {
		if got := pragma(t, s.rdb, c.pragma); got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	// The main file says "lanchat" from the first write on, even before
	// a checkpoint: the application id was set before WAL mode.
	h, err := os.ReadFile(path)
	if err != nil || len(h) < 100 || !bytes.Equal(h[68:72], []byte("LNCH")) {
		t.Errorf("main file header lacks the application id: % x", h[:min(len(h), 100)])
	}
}

// The objects each migration lists are the ones SQLite creates.
func TestMigrationObjects(t *testing.T) {
	s := openTest(t)
	info, err := inspect(context.Background(), s.rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := info.check(); err != nil {
		t.Fatal(err)
	}
	if len(info.objects) != len(objectsAt(latestVersion())) {
		t.Errorf("schema has %v, migrations list %v", info.objects, objectsAt(latestVersion()))
	}
}

// Opening an up-to-date database writes nothing: same bytes, same mtime.
func TestReopenIsNoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddReceived(context.Background(), bob.msg(t, alice, at(1), "hi")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := snap(t, path)
	for range 2 {
		s, err := Open(path, testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.Count(context.Background()); err != nil || n != 1 {
			t.Errorf("Count = %d, %v", n, err)
		}
		s.Close()
	}
	assertUntouched(t, path, before)
}

// newLanchatDB makes a closed lanchat database with n messages.
func newLanchatDB(t testing.TB, n, bodySize int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	var envs []*message.Envelope
	for i := range n {
		envs = append(envs, bob.msg(t, alice, at(float64(i)), fmt.Sprintf("%d %s", i, bytes.Repeat([]byte("x"), bodySize))))
	}
	if _, err := s.AddReceivedBatch(context.Background(), envs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewerSchema(t *testing.T) {
	path := newLanchatDB(t, 3, 10)
	rawExec(t, path, fmt.Sprintf("PRAGMA user_version = %d", latestVersion()+1))
	before := snap(t, path)
	_, err := Open(path, testOptions(t))
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open = %v, want ErrNewerSchema", err)
	}
	t.Log(err)
	assertUntouched(t, path, before)
}

// A newer lanchat's migration still in the log (not yet checkpointed into
// the main file) is noticed too.
func TestNewerSchemaInLog(t *testing.T) {
	path := newLanchatDB(t, 3, 10)
	other := rawDB(t, path)
	defer other.Close()
	if _, err := other.Exec(fmt.Sprintf("PRAGMA user_version = %d", latestVersion()+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, testOptions(t)); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open = %v, want ErrNewerSchema", err)
	}
}

func TestEmptyFileIsNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path, testOptions(t))
	if _, err := s.AddReceived(context.Background(), bob.msg(t, alice, at(1), "hi")); err != nil {
		t.Fatal(err)
	}
}

func TestForeignFiles(t *testing.T) {
	random := make([]byte, 8192)
	rand.Read(random)
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"random bytes", func(t *testing.T, path string) { os.WriteFile(path, random, 0o644) }},
		{"text", func(t *testing.T, path string) { os.WriteFile(path, []byte("my notes\n"), 0o644) }},
		{"one byte", func(t *testing.T, path string) { os.WriteFile(path, []byte{0}, 0o644) }},
		{"sqlite magic only", func(t *testing.T, path string) { os.WriteFile(path, []byte(sqliteMagic), 0o644) }},
		{"sqlite of another application", func(t *testing.T, path string) {
			rawExec(t, path, "PRAGMA application_id = 1234", "CREATE TABLE notes (x)", "INSERT INTO notes VALUES (1)")
		}},
		{"sqlite without application id", func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE messages (id TEXT)", "INSERT INTO messages VALUES ('x')")
		}},
		{"blank sqlite database", func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE t (x)", "DROP TABLE t")
		}},
		{"sqlite in WAL mode of another application, open", func(t *testing.T, path string) {
			db := rawDB(t, path)
			t.Cleanup(func() { db.Close() })
			for _, q := range []string{"PRAGMA journal_mode = WAL", "CREATE TABLE notes (x)", "INSERT INTO notes VALUES (1)"} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"lanchat id with a foreign table", func(t *testing.T, path string) {
			s, err := Open(path, testOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			rawExec(t, path, "CREATE TABLE notes (x)")
		}},
		{"directory", func(t *testing.T, path string) { os.Mkdir(path, 0o755) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "history.db")
			c.make(t, path)
			before := snap(t, path)
			_, err := Open(path, testOptions(t))
			if !errors.Is(err, ErrNotLanchat) {
				t.Fatalf("Open = %v, want ErrNotLanchat", err)
			}
			t.Log(err)
			after := snap(t, path)
			if !bytes.Equal(before.data, after.data) || !before.mtime.Equal(after.mtime) {
				t.Error("file changed")
			}
			if fmt.Sprint(before.companion) != fmt.Sprint(after.companion) {
				t.Errorf("companion files were %v, now %v", before.companion, after.companion)
			}
		})
	}
}

func TestCorrupt(t *testing.T) {
	pristine, err := os.ReadFile(newLanchatDB(t, 300, 400))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"truncated to the first page", func(b []byte) []byte { return b[:4096] }},
		{"truncated mid-page", func(b []byte) []byte { return b[:len(b)/2+100] }},
		{"pages after the first garbled", func(b []byte) []byte {
			rand.Read(b[4096:])
			return b
		}},
		{"schema garbled", func(b []byte) []byte {
			for i := 100; i < 4096; i++ {
				b[i] ^= 0x5a
			}
			return b
		}},
		{"root pages zeroed", func(b []byte) []byte {
			clear(b[4096 : 8*4096])
			return b
		}},
		{"header page size garbled", func(b []byte) []byte {
			b[16], b[17] = 0x03, 0x00
			return b
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "history.db")
			if err := os.WriteFile(path, c.damage(bytes.Clone(pristine)), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snap(t, path)
			_, err := Open(path, testOptions(t))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			t.Log(err)
			assertUntouched(t, path, before)
		})
	}
}

// Damage away from the roots passes Open and shows when read, as
// ErrCorrupt; Check finds it at once.
func TestCorruptionFoundLater(t *testing.T) {
	path := newLanchatDB(t, 2000, 400)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(b) / 4096
	for p := pages / 3; p < pages/3+20; p++ {
		rand.Read(b[p*4096 : (p+1)*4096])
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, testOptions(t))
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return // found early: fine too
		}
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check = %v, want ErrCorrupt", err)
	}
	if _, err := s.History(context.Background(), Query{Search: "x"}); err != nil && !errors.Is(err, ErrCorrupt) {
		t.Errorf("History = %v, want nil or ErrCorrupt", err)
	}
}
