//go:build linux

package filexfer

import (
	"os"

	"golang.org/x/sys/unix"
)

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

// syncFS flushes the whole file system the download directory is on.
func syncFS(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
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
