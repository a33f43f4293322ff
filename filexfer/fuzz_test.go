package filexfer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

var update = flag.Bool("update", false, "rewrite the committed seed corpora in testdata/fuzz")

// seedCorpora are the seeds of every byte-slice fuzzer, made by the real
// encoders; testdata/fuzz holds them as committed files.
func seedCorpora() map[string][][]byte {
	e1 := Entry{Path: "Urlaub/IMG 1.jpg", Size: 5 << 20, Mode: 0o644, ModTime: 1700000000e9, SourceID: 42}
	e2 := Entry{Path: "Urlaub", Dir: true, Mode: 0o755}
	e3 := Entry{Path: "../escape", Size: 1}
	entries := appendEntry(appendEntry(nil, e2), e1)
	haves := appendHave(appendHave(nil, have{File: 1, Ranges: []span{{0, 3}, {5, 9}}}), have{File: 2, Complete: true})
	offerP := appendOffer(nil, offer{Version: Version, ID: TransferID{1, 2, 3}, ChunkShift: DefaultChunkShift, Count: 2, Total: 5 << 20})
	var stream []byte
	stream = AppendTestFrame(stream, frameOffer, offerP)
	stream = AppendTestFrame(stream, frameEntries, entries)
	stream = AppendTestFrame(stream, frameData, append(appendPair(nil, 1, 0), "hello"...))
	stream = AppendTestFrame(stream, frameChunk, append(appendPair(nil, 1, 0), make([]byte, hashLen)...))
	small := offer{Version: Version, ID: TransferID{9}, ChunkShift: MinChunkShift, Count: 1, Total: 5}
	var tiny []byte
	tiny = AppendTestFrame(tiny, frameOffer, appendOffer(nil, small))
	tiny = AppendTestFrame(tiny, frameEntries, appendEntry(nil, Entry{Path: "x", Size: 5}))
	tiny = AppendTestFrame(tiny, frameData, append(appendPair(nil, 0, 0), "hello"...))
	tiny = AppendTestFrame(tiny, frameChunk, append(appendPair(nil, 0, 0), hashOf([]byte("hello"))...))
	tiny = AppendTestFrame(tiny, frameFileEnd, append(appendPair(nil, 0, 1), fileHashOf(hashOf([]byte("hello")))...))
	evil := AppendTestFrame(nil, frameOffer, appendOffer(nil, small))
	evil = AppendTestFrame(evil, frameEntries, appendEntry(nil, e3))
	var journal []byte
	journal = appendRecord(journal, recTop, []byte("Urlaub\x00Urlaub (1)"))
	journal = appendRecord(journal, recChunk, append(appendPair(nil, 1, 0), make([]byte, hashLen)...))
	journal = appendRecord(journal, recDone, append(appendPair(nil, 1, 0)[:4], "Urlaub (1)/IMG 1.jpg"...))
	return map[string][][]byte{
		"FuzzParseOffer":   {offerP, offerP[:10]},
		"FuzzParseEntries": {entries, appendEntry(nil, e3)},
		"FuzzParseHaves":   {haves, haves[:9]},
		"FuzzParseControl": {appendCode(nil, codeNoSpace, "disk full"), appendPair(nil, 3, 4), appendChanged(nil, 1, e1)},
		"FuzzJournal":      {journal, journal[:len(journal)-3]},
		"FuzzFrameReader":  {stream, stream[:20]},
		"FuzzReceiver":     {tiny, evil, stream},
	}
}

// AppendTestFrame is the framing the real writer uses.
func AppendTestFrame(dst []byte, t frameType, p []byte) []byte {
	var b bytes.Buffer
	fw := newFrameWriter(&b)
	fw.frame(t, p)
	fw.flush()
	return append(dst, b.Bytes()...)
}

func hashOf(b []byte) []byte {
	var s [hashLen]byte
	h := blake3.New()
	h.Write(b)
	h.Sum(s[:0])
	return s[:]
}

func fileHashOf(chunks ...[]byte) []byte {
	hs := make([][hashLen]byte, len(chunks))
	for i, c := range chunks {
		copy(hs[i][:], c)
	}
	h := fileHash(hs)
	return h[:]
}

// TestSeedCorpora keeps testdata/fuzz equal to seedCorpora; -update
// rewrites it.
func TestSeedCorpora(t *testing.T) {
	for name, seeds := range seedCorpora() {
		dir := filepath.Join("testdata", "fuzz", name)
		for i, s := range seeds {
			want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			p := filepath.Join(dir, fmt.Sprintf("seed%d", i))
			if *update {
				os.MkdirAll(dir, 0o755)
				if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (%v); run: go test ./filexfer -run SeedCorpora -update", p, err)
			}
		}
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		o, err := parseOffer(p)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if !bytes.Equal(appendOffer(nil, o), p) {
			t.Fatalf("offer %x does not re-encode to itself", p)
		}
	})
}

func FuzzParseEntries(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		es, err := parseEntries(p, 1000)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		var again []byte
		for _, e := range es {
			if len(e.Path) == 0 || len(e.Path) > MaxName || e.Size < 0 || e.Size > MaxTotal {
				t.Fatalf("entry %+v out of bounds", e)
			}
			again = appendEntry(again, e)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("entries %x do not re-encode to themselves", p)
		}
	})
}

func FuzzParseHaves(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		chunks := func(i uint32) (uint32, bool) { return 100, i < 8 }
		hs, err := parseHaves(p, chunks)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		var again []byte
		for _, h := range hs {
			for i, r := range h.Ranges {
				if r.Start >= r.End || r.End > 100 || (i > 0 && r.Start <= h.Ranges[i-1].End) {
					t.Fatalf("range %v accepted", r)
				}
			}
			again = appendHave(again, h)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("haves %x do not re-encode to themselves", p)
		}
	})
}

// FuzzParseControl feeds one payload to every small control decoder.
func FuzzParseControl(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		if code, reason, err := parseCode(p); err == nil {
			if !bytes.Equal(appendCode(nil, code, reason), p) {
				t.Fatalf("code frame %x does not re-encode", p)
			}
		} else if !errors.Is(err, ErrProtocol) {
			t.Fatal(err)
		}
		if a, b, err := parsePair(p, frameNack); err == nil {
			if !bytes.Equal(appendPair(nil, a, b), p) {
				t.Fatalf("pair %x does not re-encode", p)
			}
		}
		if a, b, h, err := parseHashed(p, frameChunk); err == nil {
			if !bytes.Equal(append(appendPair(nil, a, b), h[:]...), p) {
				t.Fatalf("hashed %x does not re-encode", p)
			}
		}
		if i, size, mtime, src, err := parseChanged(p); err == nil {
			if size < 0 || size > MaxTotal {
				t.Fatalf("changed size %d accepted", size)
			}
			if !bytes.Equal(appendChanged(nil, i, Entry{Size: size, ModTime: mtime, SourceID: src}), p) {
				t.Fatalf("changed %x does not re-encode", p)
			}
		}
	})
}

func FuzzJournal(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, good := parseJournal(b)
		if good < 0 || good > int64(len(b)) {
			t.Fatalf("good prefix %d of %d bytes", good, len(b))
		}
		var again []byte
		for _, r := range recs {
			again = appendRecord(again, r.typ, r.payload)
		}
		if !bytes.Equal(again, b[:good]) {
			t.Fatal("records do not re-encode to the good prefix")
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b))
		for {
			ft, p, err := fr.next()
			if err != nil {
				return
			}
			most, ok := ft.maxPayload()
			if !ok || len(p) > most {
				t.Fatalf("%v frame of %d bytes accepted", ft, len(p))
			}
		}
	})
}

// FuzzReceiver plays a hostile sender: whatever it sends, the receiver
// must not panic, must answer within bounds, and must write nothing
// outside its download folder but what a valid transfer would.
func FuzzReceiver(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		dl := filepath.Join(dir, "dl")
		cfg := DefaultReceiverConfig(dl)
		cfg.MaxEntries = 100
		cfg.IdleTimeout = time.Second
		cfg.freeSpace = func() (uint64, error) { return 1 << 30, nil }
		r, err := NewReceiver(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Serve(context.Background(), &scriptConn{r: bytes.NewReader(b)}, "PEER")
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 || ents[0].Name() != "dl" {
			t.Fatalf("something was written beside the download folder: %v", ents)
		}
		filepath.WalkDir(dl, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type()&os.ModeSymlink != 0 {
				t.Fatalf("a symlink was made: %s", p)
			}
			if err == nil && !d.IsDir() && !strings.Contains(p, StagingDir) {
				fi, _ := d.Info()
				if fi.Mode().Perm()&0o002 != 0 {
					t.Fatalf("%s is world-writable", p)
				}
			}
			return nil
		})
	})
}

// scriptConn is a net.Conn that reads a script and swallows writes.
type scriptConn struct {
	r *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
