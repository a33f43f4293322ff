//go:build !linux

package filexfer

import (
	"errors"
	"os"
)

// freeSpace is unknown here: offers are not refused up front, and a full
// disk shows as ErrNoSpace while writing.
func freeSpace(*os.Root) (uint64, error) { return 0, errors.ErrUnsupported }

// syncFS is unavailable: files are synced one by one.
func syncFS(*os.Root) error { return errors.ErrUnsupported }

// linkAt is unavailable: links go through os.Root.Link.
func linkAt(*os.File, string, *os.File, string) error { return errors.ErrUnsupported }

// startWriteback does nothing here: the checkpoint's sync does it all.
func startWriteback(*os.File, int64, int64) {}
