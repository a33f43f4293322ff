package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lanchat/filexfer"
	"lanchat/node/api"
)

// TestFilesBetweenNodes: alice sends bob a folder and a file over the
// nodes' own mesh streams; bob accepts one by policy (alice, small) and
// the other by hand, and both land in his download folder byte for byte.
func TestFilesBetweenNodes(t *testing.T) {
	ctx := context.Background()
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

	tr, err := a.n.OfferFiles(ctx, api.FileOfferRequest{To: "bob", Paths: []string{filepath.Join(src, "notes")}})
	if err != nil {
		t.Fatal(err)
	}
	state := func(r *running, id string) string {
		ts, _ := r.n.Transfers(ctx)
		for _, x := range ts {
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

	// Accepted by policy, the folder was never announced as an offer.
	b.mu.Lock()
	for _, ev := range b.events {
		if o, ok := ev.(api.FileOffer); ok {
			t.Errorf("an offer accepted by policy was announced: %+v", o)
		}
	}
	b.mu.Unlock()

	tr2, err := a.n.OfferFiles(ctx, api.FileOfferRequest{To: "bob", Paths: []string{big}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob is asked about the large one", 10*time.Second, func() bool { return state(b, tr2.ID) == filexfer.StateOffered })
	if _, err := b.n.AcceptTransfer(ctx, api.TransferRequest{ID: tr2.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.AcceptTransfer(ctx, api.TransferRequest{ID: "0000"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("accepting an unknown id: %v, want not_found", err)
	}
	waitFor(t, "the large one, accepted by hand", 10*time.Second, func() bool { return state(a, tr2.ID) == filexfer.StateDone })
	var offers, dones int
	waitFor(t, "bob's events", 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		offers, dones = 0, 0
		for _, ev := range b.events {
			switch ev := ev.(type) {
			case api.FileOffer:
				if ev.ID == tr2.ID && ev.Total == 2<<20 && ev.From.Name == "alice" {
					offers++
				}
			case api.TransferChange:
				if ev.Transfer.State == api.TransferDone && ev.Transfer.Direction == "in" {
					dones++
				}
			}
		}
		return offers == 1 && dones == 2
	})
	want, _ := os.ReadFile(big)
	if got, _ := os.ReadFile(filepath.Join(bobDL, "video.bin")); !bytes.Equal(got, want) {
		t.Fatalf("video.bin: %d bytes, want %d", len(got), len(want))
	}
}
