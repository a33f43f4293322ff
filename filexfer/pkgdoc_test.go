package filexfer

import (
	"go/parser"
	"go/token"
	"testing"
)

// The package doc is the wire specification.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || len(f.Doc.Text()) < 2000 {
		t.Fatal("package filexfer has no wire specification in doc.go")
	}
}

// The limits doc.go states in numbers.
func TestLimitsAsDocumented(t *testing.T) {
	limit := func(ft frameType) int { n, _ := ft.maxPayload(); return n }
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"OFFER", limit(frameOffer), 30},
		{"ENTRIES", limit(frameEntries), 65536},
		{"DATA", limit(frameData), 262152},
		{"CHUNK", limit(frameChunk), 40},
		{"FILE_END", limit(frameFileEnd), 40},
		{"CHANGED", limit(frameChanged), 28},
		{"REPLY", limit(frameReply), 257},
		{"HAVE", limit(frameHave), 65536},
		{"HAVE_END", limit(frameHaveEnd), 0},
		{"NACK", limit(frameNack), 8},
		{"ERROR", limit(frameError), 257},
		{"entry fixed part", entryFixedLen, 31},
		{"MaxName", MaxName, 4096},
		{"MaxManifest", MaxManifest, 16 << 20},
		{"MaxComponent", MaxComponent, 255},
		{"MaxDepth", MaxDepth, 64},
		{"default chunk shift", DefaultChunkShift, 20},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, doc.go says %d", c.name, c.got, c.want)
		}
	}
}

// TestExampleExchange runs the doc's example through the real codecs: a
// folder a with a/x holding "hello", chunk shift 16.
func TestExampleExchange(t *testing.T) {
	o := appendOffer(nil, offer{Version: Version, ChunkShift: 16, Count: 2, Total: 5})
	if len(o) != 30 || o[17] != 0x10 {
		t.Fatalf("offer %x", o)
	}
	e := appendEntry(nil, Entry{Path: "a", Dir: true, Mode: 0o755})
	e = appendEntry(e, Entry{Path: "a/x", Size: 5, Mode: 0o644})
	if len(e) != 0x42 {
		t.Fatalf("entries of %d bytes, the doc says 0x42", len(e))
	}
	d := AppendTestFrame(nil, frameData, append(appendPair(nil, 1, 0), "hello"...))
	if got := d[:7]; string(got) != "LF\x10\x00\x00\x00\x0d" {
		t.Fatalf("DATA header %x", got)
	}
}
