package filexfer

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSafePathKeepsOrdinaryNames(t *testing.T) {
	for _, n := range []string{
		"a.txt", "Urlaub 2026/IMG_0001.jpg", "日本/写真.jpg", ".bashrc", "a/b/c/d", "..foo", "foo..bar",
		"emoji 🎉.png", "Ünïcödé", "-rf", "a b", "con-artist.txt", "COM10", "nul.d/x",
	} {
		got, err := SafePath(n)
		if err != nil {
			t.Errorf("SafePath(%q): %v", n, err)
			continue
		}
		if n == "nul.d/x" {
			// A device name with an extension is still a device name.
			if got != "_nul.d/x" {
				t.Errorf("SafePath(%q) = %q, want _nul.d/x", n, got)
			}
			continue
		}
		if got != n {
			t.Errorf("SafePath(%q) = %q, want it unchanged", n, got)
		}
	}
}

// TestHostileNamesRefused: names with no safe meaning are refused.
func TestHostileNamesRefused(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"absolute", "/etc/passwd"},
		{"dotdot", "../../.ssh/authorized_keys"},
		{"dotdot inside", "a/../../b"},
		{"dotdot at end", "a/.."},
		{"dot", "."},
		{"dot element", "a/./b"},
		{"empty element", "a//b"},
		{"trailing slash", "a/"},
		{"NUL", "a\x00b"},
		{"bad UTF-8", "a\xffb"},
		{"too long", strings.Repeat("a/", MaxName/2) + "a"},
		{"element too long", strings.Repeat("x", MaxComponent+1)},
		{"too deep", strings.Repeat("d/", MaxDepth) + "f"},
		{"staging folder", StagingDir + "/evil"},
		{"staging folder case", strings.ToUpper(StagingDir)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := SafePath(tc.in); !errors.Is(err, ErrBadName) {
				t.Errorf("SafePath(%q) = %q, %v; want ErrBadName", tc.in, got, err)
			}
		})
	}
}

// TestHostileNamesMadeSafe: awkward names are rewritten, not refused.
func TestHostileNamesMadeSafe(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"control chars", "a\nb\tc\x1b[31m", "a_b_c_[31m"},
		{"DEL", "a\x7fb", "a_b"},
		{"C1 control", "a\u0085b", "a_b"},
		{"line separator", "a\u2028b", "a_b"},
		{"backslash", `..\..\windows\system32`, `.._.._windows_system32`},
		{"windows reserved", `a<b>c:d"e|f?g*h`, "a_b_c_d_e_f_g_h"},
		{"device", "CON", "_CON"},
		{"device ext", "aux.txt", "_aux.txt"},
		{"device in folder", "x/LPT1.log", "x/_LPT1.log"},
		{"trailing dot", "file.", "file_"},
		{"trailing space", "file ", "file_"},
		{"dots and spaces", "a. .", "a___"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SafePath(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("SafePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNumbered(t *testing.T) {
	for _, tc := range []struct {
		in   string
		i    int
		dir  bool
		want string
	}{
		{"a.txt", 1, false, "a (1).txt"},
		{"archive.tar.gz", 2, false, "archive.tar (2).gz"},
		{".bashrc", 1, false, ".bashrc (1)"},
		{"photos.2026", 3, true, "photos.2026 (3)"},
		{"noext", 12, false, "noext (12)"},
	} {
		if got := numbered(tc.in, tc.i, tc.dir); got != tc.want {
			t.Errorf("numbered(%q, %d) = %q, want %q", tc.in, tc.i, got, tc.want)
		}
	}
	long := strings.Repeat("é", 127) + ".txt" // 258 bytes
	if got := numbered(long, 1, false); len(got) > MaxComponent || !utf8.ValidString(got) || !strings.HasSuffix(got, " (1).txt") {
		t.Errorf("numbered(long) = %q (%d bytes)", got, len(got))
	}
}

// checkSafe fails unless out is a name SafePath may return.
func checkSafe(t *testing.T, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) || !filepath.IsLocal(out) || strings.HasPrefix(out, "/") || len(out) > MaxName {
		t.Fatalf("SafePath(%q) = %q: not a local name", in, out)
	}
	parts := strings.Split(out, "/")
	if len(parts) > MaxDepth {
		t.Fatalf("SafePath(%q) = %q: too deep", in, out)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || len(p) > MaxComponent || isDeviceName(p) {
			t.Fatalf("SafePath(%q) = %q: bad element %q", in, out, p)
		}
		if strings.HasSuffix(p, ".") || strings.HasSuffix(p, " ") {
			t.Fatalf("SafePath(%q) = %q: trailing dot or space in %q", in, out, p)
		}
		for _, r := range p {
			if unicode.IsControl(r) || strings.ContainsRune(`\<>:"|?*`, r) || r == 0x2028 || r == 0x2029 {
				t.Fatalf("SafePath(%q) = %q: rune %U left in", in, out, r)
			}
		}
	}
	if strings.EqualFold(parts[0], StagingDir) {
		t.Fatalf("SafePath(%q) = %q: the staging folder", in, out)
	}
	if again, err := SafePath(out); err != nil || again != out {
		t.Fatalf("SafePath is not stable: %q → %q → %q, %v", in, out, again, err)
	}
}

func FuzzSafePath(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "/etc", "a/b/c", "CON.txt", "a\x00", "x\u2028y", "a. ", StagingDir} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := SafePath(in)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("SafePath(%q): error %v is not ErrBadName", in, err)
			}
			return
		}
		checkSafe(t, in, out)
	})
}
