package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAPIDocMatchesCode keeps API.md in step with the code: every route
// is documented and every documented route exists, and every error code
// (with its status), event type, presence change and limit appears.
func TestAPIDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../../API.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^`\\s?]*)`").FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = true
	}
	served := map[string]bool{}
	for _, rt := range routes {
		served[rt.Method+" "+rt.Path] = true
		if !documented[rt.Method+" "+rt.Path] {
			t.Errorf("API.md does not document `%s %s`", rt.Method, rt.Path)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("API.md documents `%s`, which the handler does not serve", r)
		}
	}

	counts := map[string]int{}
	for name, value := range stringConsts(t) {
		var want string
		switch {
		case strings.HasPrefix(name, "Code"):
			want = "| `" + value + "` | " + strconv.Itoa(HTTPStatus(value)) + " |"
		case strings.HasPrefix(name, "Type"):
			want = `"type":"` + value + `"`
		case strings.HasPrefix(name, "Change"):
			want = `"change":"` + value + `"`
		case strings.HasPrefix(name, "Room") && (name == "RoomJoined" || name == "RoomLeft"):
			// A room event's change, in a room event's example.
			want = `"peer":{"id":"K2QF…","name":"bob"},"change":"` + value + `"`
		default:
			continue
		}
		counts[name[:4]]++
		if !strings.Contains(doc, want) {
			t.Errorf("API.md lacks %s for %s", want, name)
		}
	}
	if counts["Code"] < 8 || counts["Type"] < 8 || counts["Chan"] < 6 || counts["Room"] != 2 {
		t.Fatalf("found only %v constants; is the parse right?", counts)
	}

	for name, n := range map[string]int{
		"the message body limit": maxSendBody, "the status body limit": maxStatusBody, "the read body limit": maxReadBody,
		"the room body limit": maxRoomBody, "MaxReadIDs": MaxReadIDs, "MaxHistoryLimit": MaxHistoryLimit, "DefaultHistoryLimit": DefaultHistoryLimit,
		"MaxEventLine": MaxEventLine,
	} {
		if !strings.Contains(doc, strconv.Itoa(n)) {
			t.Errorf("API.md does not give %s (%d)", name, n)
		}
	}
}

// stringConsts is every string constant of the package, by name.
func stringConsts(t *testing.T) map[string]string {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							if v, err := strconv.Unquote(lit.Value); err == nil {
								out[name.Name] = v
							}
						}
					}
				}
			}
		}
	}
	return out
}
