package node

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"lanchat/internal/fsutil"
)

// ErrInUse is returned when another node already runs on the data directory.
var ErrInUse = errors.New("data directory is in use by a running node")

// ErrUnsafeDataDir is returned for a data directory another user owns or
// may write to.
var ErrUnsafeDataDir = errors.New("unsafe data directory")

// lockDir takes an exclusive advisory lock on dir/lock, held for as long
// as the returned file stays open. The kernel drops it when the process
// dies, even by kill -9, so a crash never leaves the directory locked.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := fsutil.OpenNoFollow(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 32)) // the holder's pid
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			if _, perr := strconv.Atoi(pid); perr == nil {
				return nil, fmt.Errorf("%w: %s (pid %s)", ErrInUse, dir, pid)
			}
			return nil, fmt.Errorf("%w: %s", ErrInUse, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// checkDataDir creates the directory (0700) or checks an existing one is a
// directory we can use, with an error a person can act on. Everything in
// it is private (the identity key, the control socket that sends as us),
// so the directory must be ours and closed to others: one another user
// could write to would let them replace control.sock and read what we
// send. An existing one writable by group or others, or owned by another
// user, is refused; one merely readable by them (0755, as mkdir leaves
// it) is tightened to 0700, and log says so.
func checkDataDir(dir string, log *slog.Logger) error {
	if dir == "" {
		return errors.New("no data directory")
	}
	_, err := os.Stat(dir)
	created := errors.Is(err, fs.ErrNotExist)
	if created {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data directory %s: %w: owned by uid %d, not by us (uid %d); use a directory of your own (--data-dir)",
			dir, ErrUnsafeDataDir, st.Uid, os.Geteuid())
	}
	perm := fi.Mode().Perm()
	switch {
	case perm == 0o700:
	case created:
		// Ours since a moment ago: the umask decided its mode, not a person.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
	case perm&0o022 != 0:
		return fmt.Errorf("data directory %s: %w: mode %04o lets other users write to it (they could replace its control socket); run: chmod 700 %s",
			dir, ErrUnsafeDataDir, perm, dir)
	default:
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s: mode %04o, and tightening it to 0700 failed: %w", dir, perm, err)
		}
		orDiscard(log).Info("tightened the data directory to 0700", "dir", dir, "was", fmt.Sprintf("%04o", perm))
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
