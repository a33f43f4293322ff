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
