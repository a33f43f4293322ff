package node

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lanchat/filexfer"
)

// TestFilesBetweenNodes: alice sends bob a folder and a file over the
// nodes' own mesh streams; bob accepts one by policy (alice, small) and
// the other by hand, and both land in his download folder byte for byte.
func TestFilesBetweenNodes(t *testing.T) {
	a := start(t, "alice")
	bobDL := t.TempDir()
	b := startNode(t, Config{DataDir: t.TempDir(), Name: "bob", Join: []string{a.gossip()},
		DownloadDir: bobDL, AcceptFrom: []string{"alice"}, AcceptMaxSize: 1 << 20})
	waitFor(t, "mesh", 5*time.Second, func() bool {
		p := b.peers()
		return len(p) == 1 && p[0].Online() && p[0].Verified
	})
	src := t.TempDir()
	small := filepath.Join(src, "notes", "todo.txt")
	big := filepath.Join(src, "video.bin")
	os.MkdirAll(filepath.Dir(small), 0o755)
	os.WriteFile(small, []byte("buy milk\n"), 0o644)
	os.MkdirAll(filepath.Join(src, "notes", "empty"), 0o755)
	os.WriteFile(big, bytes.Repeat([]byte("0123456789abcdef"), 1<<17), 0o644) // 2 MiB

	tr, err := a.n.SendFiles("bob", []string{filepath.Join(src, "notes")})
	if err != nil {
		t.Fatal(err)
	}
	state := func(r *running, id string) string {
		for _, x := range r.n.Transfers() {
			if x.ID == id {
				return x.State
			}
		}
		return ""
	}
	waitFor(t, "the folder, accepted by policy", 10*time.Second, func() bool { return state(a, tr.ID) == filexfer.StateDone })
	if got, _ := os.ReadFile(filepath.Join(bobDL, "notes", "todo.txt")); string(got) != "buy milk\n" {
		t.Fatalf("bob has %q", got)
	}
	if fi, err := os.Stat(filepath.Join(bobDL, "notes", "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("empty folder: %v", err)
	}

	tr2, err := a.n.SendFiles("bob", []string{big})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob is asked about the large one", 10*time.Second, func() bool { return state(b, tr2.ID) == filexfer.StateOffered })
	if _, err := b.n.AcceptTransfer(tr2.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the large one, accepted by hand", 10*time.Second, func() bool { return state(a, tr2.ID) == filexfer.StateDone })
	want, _ := os.ReadFile(big)
	if got, _ := os.ReadFile(filepath.Join(bobDL, "video.bin")); !bytes.Equal(got, want) {
		t.Fatalf("video.bin: %d bytes, want %d", len(got), len(want))
	}
}
