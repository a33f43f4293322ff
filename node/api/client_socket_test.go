package api

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientRefusesSocketNotOurs pins that a client checks the control
// socket's path before talking: a symlink, a regular file, or a socket of
// another uid is ErrUnsafeSocket naming the path; a missing one is
// ErrNoNode.
func TestClientRefusesSocketNotOurs(t *testing.T) {
	dir, err := os.MkdirTemp("", "lcsock") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cases := []struct {
		name  string
		setup func(t *testing.T) string
		want  error
		says  string
	}{
		{"missing", func(*testing.T) string { return filepath.Join(dir, "none") }, ErrNoNode, ""},
		{"symlink to a socket", func(t *testing.T) string {
			p := filepath.Join(dir, "link")
			if err := os.Symlink(sock, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, ErrUnsafeSocket, "a symbolic link"},
		{"regular file", func(t *testing.T) string {
			p := filepath.Join(dir, "file")
			os.WriteFile(p, nil, 0o600)
			return p
		}, ErrUnsafeSocket, "a regular file"},
		{"another uid's socket", func(t *testing.T) string {
			p := filepath.Join(dir, "other")
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			if err := os.Lchown(p, 4242, 4242); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("cannot chown to another uid: %v", err)
				}
				t.Skipf("cannot chown to another uid: %v", err)
			}
			return p
		}, ErrUnsafeSocket, "uid 4242"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.setup(t)
			_, err := Connect(context.Background(), p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Connect: %v, want %v", err, tc.want)
			}
			if tc.says != "" && (!strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), p)) {
				t.Errorf("error %q does not name %s and say %q", err, p, tc.says)
			}
		})
	}
}
