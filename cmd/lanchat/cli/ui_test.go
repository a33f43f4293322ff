package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The UI needs a terminal; from a pipe it says so and what to use.
func TestUINeedsATerminal(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main([]string{"ui", "--data-dir", t.TempDir()}, strings.NewReader(""), &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "needs a terminal") || !strings.Contains(errb.String(), "lanchat run") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// The log of a node the UI runs is bounded: past max it starts again.
func TestUILogIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), logName)
	w := &capWriter{path: path, max: 1000}
	defer w.Close()
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range 35 {
		if n, err := w.Write(line); n != len(line) || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1000 || fi.Size() == 0 {
		t.Errorf("log of %d bytes, bound 1000", fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", fi.Mode().Perm())
	}
}

// A symbolic link where the log goes is not followed.
func TestUILogRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir, logName)); err != nil {
		t.Fatal(err)
	}
	w := &capWriter{path: filepath.Join(dir, logName), max: 1000}
	defer w.Close()
	w.Write([]byte("hello\n"))
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("the log was written through the link: %v", err)
	}
}
