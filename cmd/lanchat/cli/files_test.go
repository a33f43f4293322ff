package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/node"
)

// realNode runs a node on loopback in a short data directory (the control
// socket's path must fit) and returns the directory.
func realNode(t *testing.T, name string, cfg node.Config) (string, *node.Node) {
	t.Helper()
	dir, err := os.MkdirTemp("", "lcf")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	cfg.DataDir, cfg.Name, cfg.Bind, cfg.NoMDNS = dir, name, "127.0.0.1", true
	cfg.Logger = testutil.Logger(t, slog.LevelError)
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-n.Ready()
	t.Cleanup(func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	})
	return dir, n
}

// TestSendFileAcceptAndDecline drives the commands against two real
// nodes: bob is asked, accepts with `lanchat accept`, and send-file exits
// 0 once he has everything; a second offer he declines makes it exit 1.
func TestSendFileAcceptAndDecline(t *testing.T) {
	aliceDir, alice := realNode(t, "alice", node.Config{})
	self, err := alice.Self(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bobDL := t.TempDir()
	bobDir, _ := realNode(t, "bob", node.Config{DownloadDir: bobDL, Join: []string{fmt.Sprintf("%s:%d", self.Addr, self.GossipPort)}})
	testutil.WaitFor(t, "alice sees bob verified", 10*time.Second, func() bool {
		ps, _ := alice.Peers(context.Background())
		return len(ps) == 1 && ps[0].Online() && ps[0].Verified
	})
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "docs", "empty"), 0o755)
	os.WriteFile(filepath.Join(src, "docs", "a.txt"), []byte("alpha"), 0o644)

	offered := func() string {
		var id string
		testutil.WaitFor(t, "bob's offer", 10*time.Second, func() bool {
			code, out, _ := lanchat(t, bobDir, "transfers", "--json")
			var ts []transferOutput
			if code != 0 || json.Unmarshal([]byte(out), &ts) != nil {
				return false
			}
			for _, tr := range ts {
				if tr.State == "offered" && tr.Direction == "in" && tr.Peer == "alice" {
					id = tr.ID
					return true
				}
			}
			return false
		})
		return id
	}
	send := func(args ...string) (chan int, *bytes.Buffer, *bytes.Buffer) {
		res := make(chan int, 1)
		var out, errb bytes.Buffer
		go func() {
			res <- Main(append([]string{"--data-dir", aliceDir, "send-file"}, args...), strings.NewReader(""), &out, &errb)
		}()
		return res, &out, &errb
	}

	res, out, errb := send("bob", filepath.Join(src, "docs"))
	id := offered()
	if code, o, e := lanchat(t, bobDir, "accept", id); code != 0 || !strings.Contains(o, "accepted docs from alice") {
		t.Fatalf("accept: %d %q %q", code, o, e)
	}
	select {
	case code := <-res:
		if code != 0 || !strings.Contains(out.String(), "sent docs to bob: 1 files, 5 B, verified") {
			t.Fatalf("send-file: %d %q %q", code, out, errb)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("send-file did not finish")
	}
	if b, _ := os.ReadFile(filepath.Join(bobDL, "docs", "a.txt")); string(b) != "alpha" {
		t.Fatalf("bob has %q", b)
	}
	if fi, err := os.Stat(filepath.Join(bobDL, "docs", "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("empty folder: %v", err)
	}

	res, _, errb = send("--json", "bob", filepath.Join(src, "docs", "a.txt"))
	id = offered()
	if code, _, e := lanchat(t, bobDir, "decline", id); code != 0 {
		t.Fatalf("decline: %d %q", code, e)
	}
	select {
	case code := <-res:
		if code != 1 || !strings.Contains(errb.String(), "declined") {
			t.Fatalf("declined send-file: %d %q", code, errb)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("send-file did not end on decline")
	}
	code, o, _ := lanchat(t, aliceDir, "transfers")
	if code != 0 || !strings.Contains(o, "done") || !strings.Contains(o, "declined") {
		t.Fatalf("alice's transfers: %d %q", code, o)
	}
}

// TestSendFileTimeoutMustBePositive: a one-shot cannot wait for nothing;
// the flag is refused before anything is looked for or sent.
func TestSendFileTimeoutMustBePositive(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(f, []byte("a"), 0o644)
	code, _, errs := lanchat(t, t.TempDir(), "send-file", "--timeout", "0s", "bob", f)
	if code != exitUsage || !strings.Contains(errs, "--timeout") {
		t.Fatalf("exit %d, %q", code, errs)
	}
}
