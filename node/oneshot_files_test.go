package node

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanchat/filexfer"
	"lanchat/node/api"
)

// TestOneShotSendFiles: with no node running, send-file's one-shot finds
// bob, sends a file he accepts by policy, and returns once he has
// verified it; a file he must decide on waits the time given, then stays
// in the data directory's file outbox, and the node started next on that
// directory delivers it under the same id once bob has said yes.
func TestOneShotSendFiles(t *testing.T) {
	ctx := context.Background()
	aliceDir := t.TempDir()
	o, err := NewOneShot(Config{DataDir: aliceDir, Name: "alice", NoMDNS: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	bobDL := t.TempDir()
	b := startNode(t, Config{DataDir: t.TempDir(), Name: "bob", DownloadDir: bobDL,
		AcceptFrom: []string{o.Identity().ID}, AcceptMaxSize: 1 << 20})
	o.cfg.Join = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(b.info().Port))}

	src := t.TempDir()
	small, big := filepath.Join(src, "small.txt"), filepath.Join(src, "big.bin")
	os.WriteFile(small, []byte("hello bob\n"), 0o644)
	bigData := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB: he is asked
	os.WriteFile(big, bigData, 0o644)

	var seen []api.Transfer
	tr, err := o.SendFiles(ctx, api.FileOfferRequest{To: "bob", Paths: []string{small}}, 10*time.Second,
		func(t api.Transfer) { seen = append(seen, t) })
	if err != nil || tr.State != filexfer.StateDone || tr.Peer.Name != "bob" || tr.Sent != 10 {
		t.Fatalf("one-shot send-file: %+v, %v", tr, err)
	}
	if len(seen) == 0 || seen[len(seen)-1].State != filexfer.StateDone {
		t.Errorf("progress seen: %+v", seen)
	}
	if got, _ := os.ReadFile(filepath.Join(bobDL, "small.txt")); string(got) != "hello bob\n" {
		t.Fatalf("bob has %q", got)
	}
	if _, err := os.Stat(filepath.Join(aliceDir, DownloadsDir)); !os.IsNotExist(err) {
		t.Errorf("a one-shot made a download folder: %v", err)
	}

	start := time.Now()
	tr, err = o.SendFiles(ctx, api.FileOfferRequest{To: "bob", Paths: []string{big}}, 1500*time.Millisecond, nil)
	if err != nil || tr.State == filexfer.StateDone || tr.State == filexfer.StateFailed {
		t.Fatalf("undecided: %+v, %v", tr, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the one-shot waited %v for 1.5 s", d)
	}
	kept, _ := os.ReadFile(filepath.Join(aliceDir, FileOutboxFile))
	if !strings.Contains(string(kept), big) {
		t.Fatalf("the file outbox holds %s", kept)
	}
	if _, err := b.n.AcceptTransfer(ctx, api.TransferRequest{ID: tr.ID}); err != nil {
		t.Fatalf("bob accepts %s: %v", tr.ID, err)
	}

	a := startNode(t, Config{DataDir: aliceDir, Name: "alice", Join: []string{b.gossip()}})
	waitFor(t, "alice's node delivers the kept offer", 15*time.Second, func() bool {
		ts, _ := a.n.Transfers(ctx)
		return len(ts) == 1 && ts[0].ID == tr.ID && ts[0].State == filexfer.StateDone
	})
	if got, _ := os.ReadFile(filepath.Join(bobDL, "big.bin")); !bytes.Equal(got, bigData) {
		t.Fatalf("bob has %d bytes of big.bin", len(got))
	}
}
