//go:build !linux

package filexfer

import (
	"errors"
	"os"
	"time"
)

// haveSyncFS: without syncfs, partial files are synced one by one, so
// they stay open until the checkpoint.
const haveSyncFS = false

// freeSpace is unknown here: offers are not refused up front, and a full
// disk shows as ErrNoSpace while writing.
func freeSpace(*os.Root) (uint64, error) { return 0, errors.ErrUnsupported }

// syncFS is unavailable: files are synced one by one.
func syncFS(*os.File) error { return errors.ErrUnsupported }

// openPart is unavailable: partial files open through os.Root.
func openPart(*os.File, string) (*os.File, error) { return nil, errors.ErrUnsupported }

// openIn is unavailable: source files open through os.Root.
func openIn(*os.File, string) (*os.File, error) { return nil, errors.ErrUnsupported }

// setTimes is unavailable: times are set through os.Root.Chtimes.
func setTimes(*os.File, time.Time) error { return errors.ErrUnsupported }

// renameNoReplace is unavailable: files are linked into place.
func renameNoReplace(*os.File, string, *os.File, string) error { return errors.ErrUnsupported }

// linkAt is unavailable: links go through os.Root.Link.
func linkAt(*os.File, string, *os.File, string) error { return errors.ErrUnsupported }

// startWriteback does nothing here: the checkpoint's sync does it all.
func startWriteback(*os.File, int64, int64) {}
