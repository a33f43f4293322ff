package filexfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFolderTreeArrivesByteForByte sends a tree with nested and empty
// folders, unicode names, an empty file, a large file and a symbolic link
// over real TLS, and compares what landed.
func TestFolderTreeArrivesByteForByte(t *testing.T) {
	src := t.TempDir()
	dst := t.TempDir()
	tree := filepath.Join(src, "Urlaub 2026")
	writeFile(t, filepath.Join(tree, "a.txt"), 1000, 1)
	writeFile(t, filepath.Join(tree, "große Datei.bin"), 5<<20+123, 2)
	writeFile(t, filepath.Join(tree, "日本", "写真.jpg"), 70000, 3)
	writeFile(t, filepath.Join(tree, "deep", "er", "x"), 1, 4)
	writeFile(t, filepath.Join(tree, "empty-file"), 0, 5)
	os.MkdirAll(filepath.Join(tree, "empty", "nested-empty"), 0o755)
	os.Chmod(filepath.Join(tree, "a.txt"), 0o640)
	outside := filepath.Join(src, "secret")
	writeFile(t, outside, 10, 6)
	if err := os.Symlink(outside, filepath.Join(tree, "link-out")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(tree, "a.txt"), mtime, mtime)

	s := source(t, tree)
	if len(s.Skipped) != 1 || s.Skipped[0].Path != "Urlaub 2026/link-out" {
		t.Fatalf("skipped %+v, want the symlink alone", s.Skipped)
	}
	var offered Offer
	cfg := recvCfg(t, dst)
	cfg.Decide = func(_ context.Context, o Offer) error { offered = o; return nil }
	srv := newServer(t, cfg)
	me := newPeer(t)
	res, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t))
	if err != nil {
		t.Fatal(err)
	}
	rres, rerr := srv.outcome(1)
	if rerr != nil {
		t.Fatal(rerr)
	}
	os.Remove(filepath.Join(tree, "link-out"))
	sameTree(t, tree, filepath.Join(dst, "Urlaub 2026"))
	if offered.Files != 5 || offered.Total != s.Total() || offered.Peer != me.id {
		t.Errorf("offer seen as %d files, %d bytes from %s", offered.Files, offered.Total, offered.Peer)
	}
	if res.Sent != s.Total() || rres.Received != s.Total() || len(rres.Placed) != 5 {
		t.Errorf("sent %d, received %d, placed %v; want %d bytes, 5 files", res.Sent, rres.Received, rres.Placed, s.Total())
	}
	fi, err := os.Stat(filepath.Join(dst, "Urlaub 2026", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("a.txt mode %v time %v, want 0640 and %v", fi.Mode().Perm(), fi.ModTime(), mtime)
	}
	if _, err := os.Lstat(filepath.Join(dst, "Urlaub 2026", "link-out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the symlink arrived: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dst, StagingDir)); len(ents) != 0 {
		t.Errorf("staging not cleaned up: %v", ents)
	}
}

// TestNeverOverwrites sends the same file and folder twice: the second
// copies get numbered names and the first stay as they were.
func TestNeverOverwrites(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "report.pdf"), 3000, 1)
	writeFile(t, filepath.Join(src, "dir", "f"), 10, 2)
	os.WriteFile(filepath.Join(dst, "report.pdf"), []byte("mine"), 0o644)
	srv := newServer(t, recvCfg(t, dst))
	me := newPeer(t)
	for i := range 2 {
		s := source(t, filepath.Join(src, "report.pdf"), filepath.Join(src, "dir"))
		if _, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.outcome(i + 1); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "report.pdf")); string(b) != "mine" {
		t.Errorf("existing file overwritten: %q", b)
	}
	for _, n := range []string{"report (1).pdf", "report (2).pdf", "dir/f", "dir (1)/f"} {
		if _, err := os.Stat(filepath.Join(dst, n)); err != nil {
			t.Errorf("want %s: %v", n, err)
		}
	}
}

// TestManySmallFilesPipelined sends 2,000 small files in one stream.
func TestManySmallFilesPipelined(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	tree := filepath.Join(src, "small")
	for i := range 2000 {
		writeFile(t, filepath.Join(tree, string(rune('a'+i%26)), strings.Repeat("n", 1+i%7)+"-"+strconv.Itoa(i)), int64(i%5000), uint64(i))
	}
	srv := newServer(t, recvCfg(t, dst))
	if _, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, tree), sendCfg(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.outcome(1); err != nil {
		t.Fatal(err)
	}
	sameTree(t, tree, filepath.Join(dst, "small"))
}

// TestResumeAfterCut cuts the stream half way through a 64 MiB file and
// sends again with the same Source: the second attempt sends only what
// had not arrived, and under 5 % of the file goes twice.
func TestResumeAfterCut(t *testing.T) {
	testResume(t, false)
}

// TestResumeAfterSenderRestart is the same with a new Source for the
// same transfer, as after the sender's process restarted: it must hash
// what the recipient holds, but still not send it again.
func TestResumeAfterSenderRestart(t *testing.T) {
	testResume(t, true)
}

func testResume(t *testing.T, fresh bool) {
	src, dst := t.TempDir(), t.TempDir()
	const size = 64 << 20
	writeFile(t, filepath.Join(src, "big.bin"), size, 7)
	srv := newServer(t, recvCfg(t, dst))
	me := newPeer(t)
	s := source(t, filepath.Join(src, "big.bin"))
	cut := &cutConn{Conn: srv.dial(t, me)}
	cut.left.Store(size / 2)
	r1, err := Send(context.Background(), cut, s, sendCfg(t))
	if err == nil {
		t.Fatal("the cut attempt succeeded")
	}
	if _, err := srv.outcome(1); err == nil {
		t.Fatal("the receiver saw the cut attempt succeed")
	}
	if _, err := os.Stat(filepath.Join(dst, "big.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a half file is under the final name: %v", err)
	}
	if fresh {
		id := s.ID
		s = source(t, filepath.Join(src, "big.bin"))
		s.ID = id
	}
	r2, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t))
	if err != nil {
		t.Fatal(err)
	}
	rr, err := srv.outcome(2)
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Offer.Resume || rr.Offer.Held == 0 {
		t.Errorf("the receiver did not see a resume: %+v", rr.Offer.Held)
	}
	twice := r1.Sent + r2.Sent - size
	t.Logf("first attempt sent %d, second %d (held %d): %d bytes twice", r1.Sent, r2.Sent, r2.Held, twice)
	if twice*20 >= size {
		t.Errorf("%d bytes (%.1f%%) sent twice, want under 5%%", twice, 100*float64(twice)/size)
	}
	sameTree(t, src, dst)
}

// TestResumeAfterLostRename: a crash after the journal recorded a file as
// done but before its rename reached the disk leaves the file in the
// staging folder, not under its name. The resume finds it there and puts
// it in place, rather than trusting the record and losing the file.
func TestResumeAfterLostRename(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	tree := filepath.Join(src, "tree")
	writeFile(t, filepath.Join(tree, "a"), 1000, 1)
	writeFile(t, filepath.Join(tree, "b"), 8<<20, 2)
	srv := newServer(t, recvCfg(t, dst))
	me := newPeer(t)
	s := source(t, tree)
	if s.Entries[1].Path != "tree/a" {
		t.Fatalf("entry 1 is %q", s.Entries[1].Path)
	}
	cut := &cutConn{Conn: srv.dial(t, me)}
	cut.left.Store(4 << 20)
	if _, err := Send(context.Background(), cut, s, sendCfg(t)); err == nil {
		t.Fatal("the cut attempt succeeded")
	}
	srv.outcome(1)
	placed := filepath.Join(dst, "tree", "a")
	if _, err := os.Stat(placed); err != nil {
		t.Fatalf("a was not placed by the cut attempt: %v", err)
	}
	// What a crash that lost the rename leaves.
	part := filepath.Join(dst, StagingDir, stagingKey(me.id, s.ID), partBase(1))
	if err := os.Rename(placed, part); err != nil {
		t.Fatal(err)
	}
	if _, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t)); err != nil {
		t.Fatal(err)
	}
	r, err := srv.outcome(2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Placed, "tree/a") {
		t.Errorf("the resume placed %v, not tree/a", r.Placed)
	}
	sameTree(t, src, dst)
}

// TestCorruptChunkRefetched spoils two chunks on the way: the receiver
// asks for exactly those again, and the file arrives whole.
func TestCorruptChunkRefetched(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 8<<20, 9)
	srv := newServer(t, recvCfg(t, dst))
	cfg := sendCfg(t)
	var spoiled atomic.Int32
	cfg.corrupt = func(file, chunk uint32) bool {
		return (chunk == 2 || chunk == 5) && spoiled.Add(1) <= 2
	}
	res, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, filepath.Join(src, "f")), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.outcome(1); err != nil {
		t.Fatal(err)
	}
	if res.Resent != 2<<20 {
		t.Errorf("resent %d bytes, want two chunks (%d)", res.Resent, 2<<20)
	}
	sameTree(t, src, dst)
}

// TestCorruptAlwaysFails: a chunk that never verifies ends the transfer
// with ErrVerify on both sides, and no file under the final name.
func TestCorruptAlwaysFails(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 2<<20, 9)
	srv := newServer(t, recvCfg(t, dst))
	cfg := sendCfg(t)
	cfg.corrupt = func(file, chunk uint32) bool { return chunk == 1 }
	_, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, filepath.Join(src, "f")), cfg)
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("sender: %v, want ErrVerify", err)
	}
	if _, err := srv.outcome(1); !errors.Is(err, ErrVerify) {
		t.Fatalf("receiver: %v, want ErrVerify", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an unverified file is under its final name: %v", err)
	}
}

// TestSourceChangedBetweenAttempts: the file changes after a cut; the
// receiver is told, drops what it held, and gets the new content whole.
func TestSourceChangedBetweenAttempts(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	const size = 16 << 20
	name := filepath.Join(src, "doc")
	writeFile(t, name, size, 1)
	srv := newServer(t, recvCfg(t, dst))
	me := newPeer(t)
	s := source(t, name)
	cut := &cutConn{Conn: srv.dial(t, me)}
	cut.left.Store(size / 2)
	if _, err := Send(context.Background(), cut, s, sendCfg(t)); err == nil {
		t.Fatal("the cut attempt succeeded")
	}
	srv.outcome(1)
	writeFile(t, name, size+100, 2)
	later := time.Now().Add(time.Minute)
	os.Chtimes(name, later, later)
	res, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t))
	if err != nil {
		t.Fatal(err)
	}
	rr, err := srv.outcome(2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Changed, []string{"doc"}) || !slices.Equal(rr.Changed, []string{"doc"}) {
		t.Errorf("changed: sender %v, receiver %v; want [doc] on both", res.Changed, rr.Changed)
	}
	if res.Sent != size+100 {
		t.Errorf("sent %d, want the whole new file (%d)", res.Sent, size+100)
	}
	sameTree(t, src, dst)
}

// TestSourceChangedWhileSending: the file grows while it is read; the
// sender notices at the end of the file and starts it over.
func TestSourceChangedWhileSending(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	name := filepath.Join(src, "log")
	writeFile(t, name, 4<<20, 1)
	srv := newServer(t, recvCfg(t, dst))
	cfg := sendCfg(t)
	var once atomic.Bool
	cfg.corrupt = func(file, chunk uint32) bool {
		if chunk == 1 && once.CompareAndSwap(false, true) {
			f, _ := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("more lines\n"))
			f.Close()
		}
		return false
	}
	res, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, name), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.outcome(1); err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != 1 {
		t.Errorf("changed %v, want the log", res.Changed)
	}
	sameTree(t, src, dst)
}

// TestDeclineAndLimits: a declined offer and one over the limits end with
// the matching error on both sides and nothing written.
func TestDeclineAndLimits(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 1<<20, 1)
	cases := []struct {
		name string
		cfg  func(*ReceiverConfig)
		want error
	}{
		{"declined", func(c *ReceiverConfig) {
			c.Decide = func(context.Context, Offer) error { return ErrDeclined }
		}, ErrDeclined},
		{"too large", func(c *ReceiverConfig) { c.MaxTotal = 1000 }, ErrRefused},
		{"too many", func(c *ReceiverConfig) { c.MaxEntries = 0 }, ErrRefused},
		{"no space", func(c *ReceiverConfig) {
			c.freeSpace = func() (uint64, error) { return 4096, nil }
		}, ErrNoSpace},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			cfg := recvCfg(t, dst)
			tc.cfg(&cfg)
			srv := newServer(t, cfg)
			_, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, filepath.Join(src, "f")), sendCfg(t))
			if !errors.Is(err, tc.want) {
				t.Errorf("sender: %v, want %v", err, tc.want)
			}
			if _, err := srv.outcome(1); !errors.Is(err, tc.want) {
				t.Errorf("receiver: %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dst, "f")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("file written: %v", err)
			}
		})
	}
}

// TestDiskFullMidway: a write failing with ENOSPC ends the transfer with
// ErrNoSpace on both sides and no file under the final name.
func TestDiskFullMidway(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 4<<20, 1)
	cfg := recvCfg(t, dst)
	cfg.failWrite = func(file uint32, off int64) error {
		if off >= 2<<20 {
			return &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}
		}
		return nil
	}
	srv := newServer(t, cfg)
	_, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, filepath.Join(src, "f")), sendCfg(t))
	if !errors.Is(err, ErrNoSpace) {
		t.Errorf("sender: %v, want ErrNoSpace", err)
	}
	if _, err := srv.outcome(1); !errors.Is(err, ErrNoSpace) {
		t.Errorf("receiver: %v, want ErrNoSpace", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file under final name: %v", err)
	}
}

// TestCancelStopsBothSides: cancelling the sender's context ends the
// transfer promptly on both sides.
func TestCancelStopsBothSides(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "f"), 32<<20, 1)
	srv := newServer(t, recvCfg(t, dst))
	ctx, cancel := context.WithCancel(context.Background())
	cfg := sendCfg(t)
	cfg.Progress = func(p Progress) {
		if p.Done > 4<<20 {
			cancel()
		}
	}
	cfg.ProgressEvery = 0
	res, err := Send(ctx, srv.dial(t, newPeer(t)), source(t, filepath.Join(src, "f")), cfg)
	if !errors.Is(err, ErrCancelled) {
		t.Errorf("sender: %v, want ErrCancelled", err)
	}
	if res.Sent > 8<<20 {
		t.Errorf("sent %d bytes after the cancel at 4 MiB", res.Sent)
	}
	if _, err := srv.outcome(1); err == nil {
		t.Error("receiver finished a cancelled transfer")
	}
}

// TestHangupWhileDeciding: a sender that hangs up while the recipient is
// still deciding frees the recipient's stream at once, rather than
// holding it until the decision or its timeout.
func TestHangupWhileDeciding(t *testing.T) {
	cfg := recvCfg(t, t.TempDir())
	asked := make(chan struct{})
	cfg.Decide = func(ctx context.Context, o Offer) error {
		close(asked)
		<-ctx.Done()
		return ctx.Err()
	}
	srv := newServer(t, cfg)
	conn := srv.dial(t, newPeer(t))
	conn.Write(hostileOffer([]Entry{{Path: "f", Size: 1, Mode: 0o644}}, 1))
	<-asked
	start := time.Now()
	conn.Close()
	if _, err := srv.outcome(1); err == nil {
		t.Fatal("the receiver accepted a vanished offer")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the stream was held %v after the sender left", d)
	}
}

// TestManySmallFilesCutAndResumed cuts a stream of 2,000 small files half
// way while the recipient checkpoints every millisecond, so its syncs and
// renames run beside the receiving loop all along: every file under a
// final name after the cut is whole and right, the second attempt
// places only the rest and receives only what was not held, and no file
// is placed twice.
func TestManySmallFilesCutAndResumed(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	tree := filepath.Join(src, "small")
	const n = 2000
	var total int64
	for i := range n {
		size := int64(1 + i%6000)
		total += size
		writeFile(t, filepath.Join(tree, strconv.Itoa(i%30), strconv.Itoa(i)), size, uint64(i))
	}
	cfg := recvCfg(t, dst)
	cfg.SyncInterval = time.Millisecond
	srv := newServer(t, cfg)
	me := newPeer(t)
	s := source(t, tree)
	cut := &cutConn{Conn: srv.dial(t, me)}
	cut.left.Store(total / 2)
	r1, err := Send(context.Background(), cut, s, sendCfg(t))
	if err == nil {
		t.Fatal("the cut attempt succeeded")
	}
	res1, err := srv.outcome(1)
	if err == nil {
		t.Fatal("the receiver saw the cut attempt succeed")
	}
	if len(res1.Placed) == 0 || len(res1.Placed) == n {
		t.Fatalf("the cut attempt placed %d of %d files", len(res1.Placed), n)
	}
	// What is under a final name is whole, and is what was sent.
	got, _ := filepath.Glob(filepath.Join(dst, "small", "*", "*"))
	if len(got) != len(res1.Placed) {
		t.Errorf("%d files under final names, the receiver placed %d", len(got), len(res1.Placed))
	}
	for _, g := range got {
		rel, _ := filepath.Rel(filepath.Join(dst, "small"), g)
		want, err := os.ReadFile(filepath.Join(tree, rel))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(g); string(b) != string(want) {
			t.Fatalf("%s is under its final name but differs from the source", rel)
		}
	}
	r2, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t))
	if err != nil {
		t.Fatal(err)
	}
	res2, err := srv.outcome(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res1.Placed)+len(res2.Placed) != n {
		t.Errorf("placed %d then %d files, want %d in all", len(res1.Placed), len(res2.Placed), n)
	}
	for _, p := range res2.Placed {
		if slices.Contains(res1.Placed, p) {
			t.Fatalf("%s placed twice", p)
		}
	}
	// What was in flight at the cut is lost with the connection; what
	// the recipient kept is not sent again, and holds the files placed.
	var placedBytes int64
	for _, p := range res1.Placed {
		fi, err := os.Stat(filepath.Join(dst, p))
		if err != nil {
			t.Fatal(err)
		}
		placedBytes += fi.Size()
	}
	t.Logf("placed %d then %d; sent %d then %d of %d bytes; held %d at the resume", len(res1.Placed), len(res2.Placed), r1.Sent, r2.Sent, total, res2.Offer.Held)
	if res2.Offer.Held < placedBytes {
		t.Errorf("the resume holds %d bytes, the files placed before it %d", res2.Offer.Held, placedBytes)
	}
	if res2.Received+res2.Offer.Held != total {
		t.Errorf("the resume received %d bytes and held %d, want %d in all", res2.Received, res2.Offer.Held, total)
	}
	sameTree(t, tree, filepath.Join(dst, "small"))
}
