package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv, set to a socket path, makes the test binary a client of that
// socket instead of running tests (TestRefusesAnotherUsersProcess).
const helperEnv = "LANCHAT_API_TEST_DIAL"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		os.Exit(dialHelper(sock))
	}
	os.Exit(m.Run())
}

// dialHelper asks the node at sock who it is and prints what came back.
func dialHelper(sock string) int {
	fmt.Printf("uid=%d\n", os.Getuid())
	status, body, err := rawGet(sock, "/v1/self")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("status=%d\nbody=%s", status, body)
	_, err = NewClient(sock).Self(context.Background())
	// Our own client does not even ask: the socket is another uid's.
	fmt.Printf("unsafe=%v\n", errors.Is(err, ErrUnsafeSocket))
	return 0
}

func rawGet(sock, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://lanchat"+path, nil)
	resp, err := rawClient(sock).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestRefusesAnotherUsersProcess connects, as uid 65534, to a socket
// opened to everyone and expects 403 forbidden from the uid check alone.
func TestRefusesAnotherUsersProcess(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to run a client as another user; CI runs as root")
		}
		t.Skip("needs root to run a client as another user (uid 65534)")
	}
	f := newFake()
	sock, _ := serve(t, f, DefaultConfig())
	dir := filepath.Dir(sock)
	// Only the uid check stands between the other user and the node.
	for path, mode := range map[string]os.FileMode{dir: 0o755, sock: 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary sits in a directory only root may enter: a copy.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	copyFile(t, self, bin, 0o755)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid 65534: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"uid=65534\n", "status=403\n", `"code":"forbidden"`, "unsafe=true\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("helper output lacks %q:\n%s", want, got)
		}
	}
	if calls := f.callLog(); len(calls) > 0 {
		t.Errorf("the fake was called: %v", calls)
	}
	// The owner is served on the same socket.
	if status, body, err := rawGet(sock, "/v1/self"); err != nil || status != 200 {
		t.Errorf("root: %d %s %v", status, body, err)
	}
}

func TestListenMakesAPrivateSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "control.sock")
	ln, err := Listen(path, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket, 0600", fi.Mode())
	}
	// Its connections carry the peer's uid.
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cred := ConnContext(context.Background(), c).Value(peerCredKey{}).(peerCred)
	if cred.err != nil || cred.uid != os.Getuid() {
		t.Errorf("peer credentials %+v, want uid %d", cred, os.Getuid())
	}
	c.Close()
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	dir := shortDir(t)
	target := filepath.Join(dir, "target")
	writeFile(t, target, "keep me")
	live := filepath.Join(dir, "live.sock")
	liveLn, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer liveLn.Close()
	staleSock := filepath.Join(dir, "stale.sock")
	staleSocket(t, staleSock)
	linkedSock := filepath.Join(dir, "linked.sock")
	staleSocket(t, linkedSock)
	linkToSocket := filepath.Join(dir, "link.sock")
	if err := os.Symlink(linkedSock, linkToSocket); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		setup      func(path string)
		refused    string // "" if Listen must succeed
	}{
		{"stale socket", staleSock, nil, ""},
		{"live socket", live, nil, "in use"},
		{"regular file", filepath.Join(dir, "file"), func(p string) { writeFile(t, p, "data") }, "a regular file"},
		{"symlink to a file", filepath.Join(dir, "link"), func(p string) { os.Symlink(target, p) }, "a symbolic link"},
		{"dangling symlink", filepath.Join(dir, "dangling"), func(p string) { os.Symlink(filepath.Join(dir, "nowhere"), p) }, "a symbolic link"},
		{"symlink to a stale socket", linkToSocket, nil, "a symbolic link"},
		{"directory", filepath.Join(dir, "sub"), func(p string) { os.Mkdir(p, 0o700) }, "a directory"},
		{"path too long", filepath.Join(dir, strings.Repeat("x", 120)), nil, "at most 107"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(tc.path)
			}
			before, _ := os.Lstat(tc.path)
			ln, err := Listen(tc.path, testLogger(t))
			if tc.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				ln.Close()
				return
			}
			if err == nil {
				ln.Close()
				t.Fatalf("Listen succeeded, want it refused (%s)", tc.refused)
			}
			if !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q, want it to name the path and say %q", err, tc.refused)
			}
			after, _ := os.Lstat(tc.path)
			if before != nil && (after == nil || after.Mode() != before.Mode() || after.ModTime() != before.ModTime()) {
				t.Errorf("%s changed: %v, was %v", tc.path, after, before)
			}
		})
	}
	// What the symlinks pointed at is intact.
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
		t.Errorf("symlink target: %q, %v", b, err)
	}
	if fi, err := os.Lstat(linkedSock); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("the stale socket the symlink names: %v, %v", fi, err)
	}
}

// staleSocket leaves a socket file at path that nothing listens on.
func staleSocket(t testing.TB, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// withPeerUID is the context ConnContext gives a request from uid.
func withPeerUID(ctx context.Context, uid int) context.Context {
	return context.WithValue(ctx, peerCredKey{}, peerCred{uid: uid})
}

// recordRequest serves one request through h with a recorder.
func recordRequest(h http.Handler, ctx context.Context, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
