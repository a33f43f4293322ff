// Package fsutil holds the one file-writing rule node and chat share:
// small state files (presence, contacts) are replaced atomically, so a
// reader or a crash sees the old file or the new one, never a part.
package fsutil

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data (mode 0600): a temporary file
// beside it, then a rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
