package store

import (
	"path/filepath"
	"syscall"
)

// lowOnSpace reports whether the file system holding path has less than
// 1 MiB available to us.
func lowOnSpace(path string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return false
	}
	return st.Bavail*uint64(st.Bsize) < 1<<20
}
