package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"
)

// Listen creates the control socket at path, mode 0600, and returns a
// listener whose connections carry their peer's uid (SO_PEERCRED), which
// ConnContext hands to the handler. A socket file already at path is
// removed if nothing answers on it (a node that died left it); anything
// else there — a live socket, a symlink, a regular file, a directory — is
// refused and left alone.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	log = orDiscard(log)
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %s: a path of %d bytes; a Unix socket path has at most %d", path, len(path), maxSocketPath)
	}
	if err := removeStale(path, log); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Until this chmod the socket has the umask's mode; the uid check
	// refuses other users meanwhile.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	log.Debug("api: listening", "socket", path)
	return &credListener{ln}, nil
}

// removeStale removes a socket file at path that nothing answers on, and
// refuses anything else that is there.
func removeStale(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("control socket %s: already exists and is not a socket (%s); refusing to replace it", path, kindOf(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("control socket %s: in use, something answers on it", path)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("control socket %s: probe the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	log.Debug("api: removed stale control socket", "socket", path)
	return nil
}

func kindOf(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return m.Type().String()
}

// credListener is a Unix listener whose connections carry their peer's
// credentials.
type credListener struct {
	*net.UnixListener
}

// Accept returns the next connection with its peer's uid. A connection
// whose credentials cannot be read is still returned (an error here would
// stop http.Server.Serve); the handler refuses its requests.
func (l *credListener) Accept() (net.Conn, error) {
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	cc := &credConn{UnixConn: c}
	cc.cred.uid, cc.cred.err = peerUIDOf(c)
	return cc, nil
}

// credConn is an accepted connection and its peer's credentials.
type credConn struct {
	*net.UnixConn
	cred peerCred
}

// peerCred is who is at the other end of a connection.
type peerCred struct {
	uid int
	err error // why uid is unknown
}

type peerCredKey struct{}

// ConnContext is an http.Server ConnContext hook: it puts the peer's uid
// of a connection from Listen (or any Unix connection) into the context
// of its requests, where the handler checks it.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	var cred peerCred
	switch c := c.(type) {
	case *credConn:
		cred = c.cred
	case *net.UnixConn:
		cred.uid, cred.err = peerUIDOf(c)
	default:
		cred.err = fmt.Errorf("a %s connection, not a Unix socket", c.LocalAddr().Network())
	}
	return context.WithValue(ctx, peerCredKey{}, cred)
}
