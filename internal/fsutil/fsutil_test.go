package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, want := range []string{"first", "second"} {
		if err := WriteFileAtomic(p, []byte(want)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Fatalf("read %q, %v; want %q", b, err, want)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left %d files behind", len(ents))
	}
}

// TestHostileFilesInDataDir pins that a symbolic link where a state file
// should be is refused, not followed, and that an oversized file is
// refused without being read or changed.
func TestHostileFilesInDataDir(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"read a link", func() error { _, err := ReadFileLimit(link, 1<<10); return err }, ErrSymlink},
		{"open a link", func() error {
			f, err := OpenNoFollow(link, os.O_RDWR|os.O_CREATE, 0o600)
			if f != nil {
				f.Close()
			}
			return err
		}, ErrSymlink},
		{"read too large", func() error { _, err := ReadFileLimit(big, 99); return err }, ErrTooLarge},
		{"read at the bound", func() error { _, err := ReadFileLimit(big, 100); return err }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(target); string(b) != "secret" {
		t.Errorf("the link's target changed: %q", b)
	}
	if fi, _ := os.Stat(big); fi.Size() != 100 {
		t.Errorf("the large file changed: %d bytes", fi.Size())
	}
	// An atomic write over a link replaces the link, never writes through it.
	if err := WriteFileAtomic(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "secret" {
		t.Errorf("WriteFileAtomic wrote through the link: %q", b)
	}
}
