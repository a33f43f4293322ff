//go:build linux

package filexfer

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// haveSyncFS: one syncfs makes every file written on the file system
// durable, closed ones too, so a finished partial file may be closed
// before the checkpoint that syncs it.
const haveSyncFS = true

// freeSpace is what an unprivileged user may still write on the download
// directory's file system.
func freeSpace(root *os.Root) (uint64, error) {
	d, err := root.Open(".")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(d.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// syncFS flushes the whole file system dir is on. dir is held for the
// whole transfer: syncfs reports the write-back errors seen since its
// handle was opened, so a handle opened just for the call would miss
// those of pages the kernel wrote back earlier on its own.
func syncFS(dir *os.File) error {
	return unix.Syncfs(int(dir.Fd()))
}

// openPart opens, creating it if missing, the partial file name (a plain
// name of ours, no separator) in the staging folder dir: one openat by
// the folder's handle, never through a link, instead of os.Root's walk.
func openPart(dir *os.File, name string) (*os.File, error) {
	return openAt(dir, name, unix.O_RDWR|unix.O_CREAT)
}

// openIn opens name, a plain name, in folder dir for reading, refusing a
// link (ELOOP).
func openIn(dir *os.File, name string) (*os.File, error) {
	return openAt(dir, name, unix.O_RDONLY)
}

// openAt is openat by a folder's handle, never following a link. The file
// goes through os.NewFile, not os.OpenFile, which would also try each
// regular file on the poller and back (five more system calls a file).
func openAt(dir *os.File, name string, flags int) (*os.File, error) {
	for {
		fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// setTimes sets f's access and modification time by its handle
// (futimens), where os.Root.Chtimes would walk to it and check for a link.
func setTimes(f *os.File, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	// utimensat with a NULL path acts on the handle itself.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return &os.PathError{Op: "futimens", Path: f.Name(), Err: e}
	}
	return nil
}

// renameNoReplace moves old in folder from to new in folder to, by their
// handles, failing with EEXIST if new exists (RENAME_NOREPLACE): the
// file takes its final name and leaves the staging folder in one atomic
// step, so after a crash it is in exactly one of the two. A file system
// without the flag gives errors.ErrUnsupported.
func renameNoReplace(from *os.File, old string, to *os.File, new string) error {
	err := unix.Renameat2(int(from.Fd()), old, int(to.Fd()), new, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS || err == unix.ENOTSUP {
		return errors.ErrUnsupported
	}
	return err
}

// linkAt links old in folder from to new in folder to, by their handles:
// one system call, no walk. linkat never follows new, so a link planted
// under that name is an error (EEXIST), not a way out.
func linkAt(from *os.File, old string, to *os.File, new string) error {
	return unix.Linkat(int(from.Fd()), old, int(to.Fd()), new, 0)
}

// startWriteback asks the kernel to begin writing a range of f to disk
// and returns at once (sync_file_range with SYNC_FILE_RANGE_WRITE); the
// sync that follows later waits for less. Errors are left to that sync.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
