package message

import (
	"go/parser"
	"go/token"
	"testing"
)

// Every package has a doc comment; this one's is its wire specification.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || len(f.Doc.Text()) < 200 {
		t.Fatal("package message has no package doc in doc.go")
	}
}

// The limits doc.go states in numbers.
func TestLimitsAsDocumented(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"MaxEnvelope", MaxEnvelope, 66205},
		{"ACK payload", FrameAck.maxPayload(), 273},
		{"CLOSE payload", FrameClose.maxPayload(), 255},
		{"MaxFrame", MaxFrame, 131072},
		{"MaxText", MaxText, 65536},
		{"envelope fixed part", envFixedLen, 63},
		{"envelope fixed part, version 2", envFixedLenV2, 71},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, doc.go says %d", c.name, c.got, c.want)
		}
	}
}
