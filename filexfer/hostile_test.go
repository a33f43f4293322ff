package filexfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileOffer builds a sender's opening: an OFFER for entries, then the
// entries, then extra frames.
func hostileOffer(entries []Entry, total uint64, extra ...[]byte) []byte {
	o := offer{Version: Version, ID: TransferID{7}, ChunkShift: MinChunkShift, Count: uint32(len(entries)), Total: total}
	b := AppendTestFrame(nil, frameOffer, appendOffer(nil, o))
	var p []byte
	for _, e := range entries {
		p = appendEntry(p, e)
	}
	if len(p) > 0 {
		b = AppendTestFrame(b, frameEntries, p)
	}
	for _, x := range extra {
		b = append(b, x...)
	}
	return b
}

// hugeManifest is an offer of many files with names of the longest kind,
// more than MaxManifest bytes of them.
func hugeManifest() []byte {
	var es []Entry
	long := strings.Repeat("n", MaxComponent)
	for i := 0; len(es)*(entryFixedLen+MaxComponent) <= MaxManifest+maxListFrame; i++ {
		es = append(es, Entry{Path: long[:MaxComponent-8] + fmt.Sprintf("%08d", i), Mode: 0o644})
	}
	o := offer{Version: Version, ID: TransferID{8}, ChunkShift: MinChunkShift, Count: uint32(len(es))}
	b := AppendTestFrame(nil, frameOffer, appendOffer(nil, o))
	var p []byte
	for _, e := range es {
		if len(p)+entryFixedLen+len(e.Path) > maxListFrame {
			b = AppendTestFrame(b, frameEntries, p)
			p = p[:0]
		}
		p = appendEntry(p, e)
	}
	return AppendTestFrame(b, frameEntries, p)
}

func serveScript(t *testing.T, script []byte, tweak func(*ReceiverConfig)) (string, error) {
	t.Helper()
	dir := t.TempDir()
	dl := filepath.Join(dir, "dl")
	cfg := DefaultReceiverConfig(dl)
	cfg.IdleTimeout = time.Second
	cfg.freeSpace = func() (uint64, error) { return 1 << 40, nil }
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := NewReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Serve(context.Background(), &scriptConn{r: bytes.NewReader(script)}, "PEER")
	return dir, err
}

// TestHostileManifests: offers a hostile sender might make are refused
// before anything is written.
func TestHostileManifests(t *testing.T) {
	file := func(name string, size int64) Entry { return Entry{Path: name, Size: size, Mode: 0o644} }
	dir := func(name string) Entry { return Entry{Path: name, Dir: true, Mode: 0o755} }
	data := func(i, c uint32, n int) []byte {
		return AppendTestFrame(nil, frameData, append(appendPair(nil, i, c), make([]byte, n)...))
	}
	cases := []struct {
		name   string
		script []byte
		tweak  func(*ReceiverConfig)
		want   error
	}{
		{"dotdot", hostileOffer([]Entry{file("../../.bashrc", 1)}, 1), nil, ErrBadName},
		{"absolute", hostileOffer([]Entry{file("/etc/cron.d/x", 1)}, 1), nil, ErrBadName},
		{"dotdot deep", hostileOffer([]Entry{dir("a"), file("a/../../x", 1)}, 1), nil, ErrBadName},
		{"staging", hostileOffer([]Entry{file(StagingDir+"/k/0.part", 1)}, 1), nil, ErrBadName},
		{"duplicate", hostileOffer([]Entry{file("a", 1), file("a", 1)}, 2), nil, ErrProtocol},
		{"duplicate after rewrite", hostileOffer([]Entry{file("a:b", 1), file("a_b", 1)}, 2), nil, ErrProtocol},
		{"file is a folder", hostileOffer([]Entry{file("a", 1), file("a/b", 1)}, 2), nil, ErrProtocol},
		{"sizes lie", hostileOffer([]Entry{file("a", 10)}, 5), nil, ErrProtocol},
		{"too many", hostileOffer([]Entry{file("a", 1), file("b", 1)}, 2), func(c *ReceiverConfig) { c.MaxEntries = 1 }, ErrRefused},
		{"too big", hostileOffer([]Entry{file("a", 1<<40)}, 1<<40), func(c *ReceiverConfig) { c.MaxTotal = 1 << 30 }, ErrRefused},
		{"more than the disk", hostileOffer([]Entry{file("a", 1<<41)}, 1<<41), nil, ErrNoSpace},
		{"chunk too long", hostileOffer([]Entry{file("a", 10)}, 10, data(0, 0, 11)), nil, ErrProtocol},
		{"data for a folder", hostileOffer([]Entry{dir("d"), file("d/a", 10)}, 10, data(0, 0, 5)), nil, ErrProtocol},
		{"data past the end", hostileOffer([]Entry{file("a", 10)}, 10, data(0, 1, 5)), nil, ErrProtocol},
		{"data for no file", hostileOffer([]Entry{file("a", 10)}, 10, data(9, 0, 5)), nil, ErrProtocol},
		{"frame too large", hostileOffer([]Entry{file("a", 10)}, 10, []byte{'L', 'F', byte(frameData), 0x7f, 0xff, 0xff, 0xff}), nil, ErrProtocol},
		{"unknown frame", hostileOffer([]Entry{file("a", 10)}, 10, []byte{'L', 'F', 0x77, 0, 0, 0, 0}), nil, ErrProtocol},
		{"wrong magic", []byte("GET / HTTP/1.1\r\n\r\n"), nil, ErrProtocol},
		{"manifest too large", hugeManifest(), nil, ErrRefused},
		{"receiver frame from sender", hostileOffer([]Entry{file("a", 10)}, 10, AppendTestFrame(nil, frameComplete, nil)), nil, ErrProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := serveScript(t, tc.script, tc.tweak)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Serve: %v, want %v", err, tc.want)
			}
			var files []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(filepath.Dir(p))) != StagingDir {
					files = append(files, p)
				}
				return nil
			})
			if len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
		})
	}
}

// TestHostileSymlinkInDownloadDir: a link someone planted in the download
// folder is never written through; the transfer takes numbered names.
func TestHostileSymlinkInDownloadDir(t *testing.T) {
	src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "evil", "f"), 100, 1)
	writeFile(t, filepath.Join(src, "top.txt"), 100, 2)
	os.Symlink(outside, filepath.Join(dst, "evil"))
	os.Symlink(filepath.Join(outside, "top.txt"), filepath.Join(dst, "top.txt"))
	srv := newServer(t, recvCfg(t, dst))
	s := source(t, filepath.Join(src, "evil"), filepath.Join(src, "top.txt"))
	if _, err := Send(context.Background(), srv.dial(t, newPeer(t)), s, sendCfg(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.outcome(1); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written through a link: %v", ents)
	}
	for _, n := range []string{"evil (1)/f", "top (1).txt"} {
		if _, err := os.Stat(filepath.Join(dst, n)); err != nil {
			t.Errorf("want %s: %v", n, err)
		}
	}
}

// TestHostileModes: setuid cannot travel, and world-writable is dropped.
func TestHostileModes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "d", "run.sh"), 10, 1)
	os.Chmod(filepath.Join(src, "d", "run.sh"), 0o777|os.ModeSetuid)
	os.Chmod(filepath.Join(src, "d"), 0o777)
	srv := newServer(t, recvCfg(t, dst))
	if _, err := Send(context.Background(), srv.dial(t, newPeer(t)), source(t, filepath.Join(src, "d")), sendCfg(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.outcome(1); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]os.FileMode{"d/run.sh": 0o775, "d": 0o775 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(dst, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", n, fi.Mode(), want)
		}
	}
}

// TestTornJournalTail: a crash that tears the journal's last record
// loses that record only; the resume still sends little.
func TestTornJournalTail(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	const size = 16 << 20
	writeFile(t, filepath.Join(src, "f"), size, 3)
	srv := newServer(t, recvCfg(t, dst))
	me := newPeer(t)
	s := source(t, filepath.Join(src, "f"))
	cut := &cutConn{Conn: srv.dial(t, me)}
	cut.left.Store(size / 2)
	r1, _ := Send(context.Background(), cut, s, sendCfg(t))
	srv.outcome(1)
	js, _ := filepath.Glob(filepath.Join(dst, StagingDir, "*", "journal"))
	if len(js) != 1 {
		t.Fatalf("journals: %v", js)
	}
	f, _ := os.OpenFile(js[0], os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{recChunk, 0, 40, 1, 2, 3}) // a record cut short
	f.Close()
	r2, err := Send(context.Background(), srv.dial(t, me), s, sendCfg(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.outcome(2); err != nil {
		t.Fatal(err)
	}
	if twice := r1.Sent + r2.Sent - size; twice*20 >= size {
		t.Errorf("%d bytes sent twice", twice)
	}
	sameTree(t, src, dst)
}
