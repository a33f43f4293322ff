package termtext

import (
	"slices"
	"testing"
)

func TestLineAndSplit(t *testing.T) {
	for _, c := range []struct{ in, line string }{
		{"plain text", "plain text"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"gpj\u202eexe", `gpj\u202eexe`},
		{"a\nb\tc", `a\x0ab\x09c`},
		{"\x9b", "\uFFFD"},
		{"\U000e0041tag", `\U000e0041tag`},
	} {
		if got := Line(c.in); got != c.line {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.line)
		}
	}
	if got := Split("one\x07\ntwo\tthree"); !slices.Equal(got, []string{`one\x07`, "two    three"}) {
		t.Errorf("Split = %q", got)
	}
	if got := Lines("a\nb\x1b"); got != "a\n    b\\x1b" {
		t.Errorf("Lines = %q", got)
	}
}
