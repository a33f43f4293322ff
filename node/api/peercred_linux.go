package api

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest path a Unix socket can have.
const maxSocketPath = 107

// peerUIDOf is the uid of the process at the other end of c, as the
// kernel recorded it when that process connected.
func peerUIDOf(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	if serr != nil {
		return -1, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return int(cred.Uid), nil
}
