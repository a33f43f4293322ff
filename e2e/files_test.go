package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// transferLine is a `transfer` line of `run --json`.
type transferLine struct {
	Type     string `json:"type"`
	Transfer struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Total     int64  `json:"total"`
		Done      int64  `json:"done"`
		State     string `json:"state"`
	} `json:"transfer"`
}

func (n *node) transfers() []transferLine {
	var out []transferLine
	for _, ev := range n.eventsOf("transfer") {
		var tl transferLine
		if json.Unmarshal([]byte(ev.raw), &tl) == nil {
			out = append(out, tl)
		}
	}
	return out
}

// TestSendFileSurvivesReceiverKill sends a folder (a 200 MB file, nested
// and empty folders, unicode names, a symbolic link) from alice to bob
// across the namespace LAN with the real binaries; bob's node is killed
// (SIGKILL) part way and started again on the same data directory. The
// transfer resumes from what bob had recorded, not from zero, send-file
// exits 0, and the tree arrives byte for byte, the link left out.
func TestSendFileSurvivesReceiverKill(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	bobDL := newDataDir(t)
	bobOpts := nodeOpts{name: "bob", dataDir: newDataDir(t), logLevel: "info",
		args: []string{"--download-dir", bobDL, "--accept-from", "alice"}}
	bob := startNode(t, lab.Hosts[1], bobOpts)
	waitSees(t, seeTimeout, []*node{alice, bob}, []*node{alice, bob}, "available")

	src := newDataDir(t)
	tree := filepath.Join(src, "Ferien")
	for name, size := range map[string]int{"big.bin": 200 << 20, "日本/写真.jpg": 300 << 10, "a/b/c.txt": 10, "leer.txt": 0} {
		p := filepath.Join(tree, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, size)
		r := mrand.New(mrand.NewPCG(uint64(size), 1))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(tree, "empty", "deeper"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(tree, "link"))

	sent := make(chan cliResult, 1)
	go func() {
		r, err := tryCLI(alice.host, lanchatBin(t), "", "--data-dir", alice.dataDir, "send-file", "bob", tree)
		if err != nil {
			r.stderr += err.Error()
			r.code = -1
		}
		sent <- r
	}()
	var id string
	var total int64
	waitFor(t, seeTimeout, func() error {
		for _, tl := range bob.transfers() {
			// Past the first 64 MiB: bob has synced and recorded some.
			if tl.Transfer.Direction == "in" && tl.Transfer.Done > 100<<20 {
				id, total = tl.Transfer.ID, tl.Transfer.Total
				return nil
			}
		}
		return fmt.Errorf("bob has not received 100 MB yet")
	})
	bob.Kill()
	bob2 := startNode(t, lab.Hosts[1], bobOpts)

	select {
	case r := <-sent:
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("send-file did not finish within a minute of the restart")
	}
	// The restarted node's first word about the transfer with data in
	// it already counts what it had verified before the kill.
	var first *transferLine
	for _, tl := range bob2.transfers() {
		if tl.Transfer.ID == id && tl.Transfer.State == "active" {
			first = &tl
			break
		}
	}
	if first == nil || first.Transfer.Done == 0 || first.Transfer.Done >= total {
		t.Fatalf("after the restart bob started at %+v, want part of %d bytes", first, total)
	}
	t.Logf("bob held %d of %d bytes when he came back", first.Transfer.Done, total)

	got := filepath.Join(bobDL, "Ferien")
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		q := filepath.Join(got, rel)
		fi, err := os.Lstat(q)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if err == nil {
				t.Errorf("the link %s was sent", rel)
			}
		case err != nil:
			t.Errorf("missing %s: %v", rel, err)
		case d.IsDir() != fi.IsDir():
			t.Errorf("%s: folder %v, want %v", rel, fi.IsDir(), d.IsDir())
		case !d.IsDir():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs (%d bytes, want %d)", rel, len(b), len(a))
			}
		}
		return nil
	})
}
