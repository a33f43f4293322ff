package store

import (
	"go/parser"
	"go/token"
	"testing"
)

// The package doc explains the schema and the durability decisions.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || len(f.Doc.Text()) < 1000 {
		t.Fatal("package store has no package doc in doc.go")
	}
}
