//go:build !linux

package api

import (
	"errors"
	"net"
)

// maxSocketPath is the longest path a Unix socket can have (BSD, macOS).
const maxSocketPath = 103

// peerUIDOf is not implemented off Linux: every request is refused.
func peerUIDOf(*net.UnixConn) (int, error) {
	return -1, errors.New("peer credentials are read only on Linux")
}
