package lint

import (
	"bytes"
	"flag"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite PROTOCOL.md from its sources")

// docMarkdown turns a package doc comment into Markdown: "# X" headings
// become level-3 headings and tab-indented blocks become code blocks.
func docMarkdown(t *testing.T, dir string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "doc.go"), nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	inCode := false
	for _, line := range strings.Split(f.Doc.Text(), "\n") {
		code := strings.HasPrefix(line, "\t")
		if code != inCode { // a fence opens or closes the block
			out.WriteString("```\n")
			inCode = code
		}
		switch {
		case code:
			out.WriteString(strings.TrimPrefix(line, "\t") + "\n")
		case strings.HasPrefix(line, "# "):
			out.WriteString("### " + strings.TrimPrefix(line, "# ") + "\n")
		default:
			out.WriteString(line + "\n")
		}
	}
	if inCode {
		out.WriteString("```\n")
	}
	return strings.TrimRight(out.String(), "\n") + "\n"
}

func protocolDoc(t *testing.T) []byte {
	root := filepath.Join("..", "..")
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var b bytes.Buffer
	b.WriteString(read("protocol-head.md"))
	b.WriteString("## 1. Discovery (mDNS)\n\n")
	b.WriteString(docMarkdown(t, filepath.Join(root, "discovery")))
	b.WriteString("\n")
	b.WriteString(read("protocol-mesh.md"))
	b.WriteString("\n## 5. Direct messages\n\n")
	b.WriteString(docMarkdown(t, filepath.Join(root, "message")))
	b.WriteString("\n## 6. Room catch-up\n\n")
	b.WriteString(docMarkdown(t, filepath.Join(root, "message", "roomsync")))
	b.WriteString("\n")
	b.WriteString(read("protocol-tail.md"))
	b.WriteString("\n## 10. Files and folders\n\n")
	b.WriteString(docMarkdown(t, filepath.Join(root, "filexfer")))
	return b.Bytes()
}

// TestProtocolDocInSync keeps PROTOCOL.md equal to the specs it is made of.
func TestProtocolDocInSync(t *testing.T) {
	want := protocolDoc(t)
	path := filepath.Join("..", "..", "PROTOCOL.md")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("PROTOCOL.md is out of date with discovery/doc.go, message/doc.go, message/roomsync/doc.go, filexfer/doc.go or internal/lint/protocol-*.md; run: go test ./internal/lint -run Protocol -update")
	}
}
