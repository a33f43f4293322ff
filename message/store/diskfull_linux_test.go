//go:build linux

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A real full file system (a small tmpfs; needs root, skipped otherwise),
// filled by another file: writes fail with ErrDiskFull and lose nothing
// stored before, and work again once there is room.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	ctx := context.Background()
	s := openAt(t, filepath.Join(dir, "history.db"), testOptions(t))
	var stored []string
	for i := range 20 {
		e := bob.msg(t, alice, at(float64(i)), fmt.Sprint("before the disk filled ", i))
		if _, err := s.AddReceived(ctx, e); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, e.ID)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// Small writes may still fit in the last free blocks and in pages the
	// log already has; keep writing until the disk says no.
	more, err := fillUntilFull(t, s, 10000)
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write to a full disk: %v, want ErrDiskFull", err)
	}
	t.Logf("%d more stored, then: %v", len(more), err)
	stored = append(stored, more...)
	for range 3 {
		if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(1e6), "still full")); !errors.Is(err, ErrDiskFull) {
			t.Errorf("another write to the full disk: %v, want ErrDiskFull", err)
		}
	}
	checkStored(t, s, stored)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e := bob.msg(t, alice, at(2e6), "room again")
	if _, err := s.AddReceived(ctx, e); err != nil {
		t.Fatalf("after the disk has room again: %v", err)
	}
	checkStored(t, s, append(stored, e.ID))
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
}
