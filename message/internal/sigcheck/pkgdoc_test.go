package sigcheck

import (
	"go/parser"
	"go/token"
	"testing"
)

// The package doc says what is checked, and that it is crypto/ed25519's
// answer.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || len(f.Doc.Text()) < 200 {
		t.Fatal("package sigcheck has no package doc in doc.go")
	}
}
