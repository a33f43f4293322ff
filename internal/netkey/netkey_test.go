package netkey

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lanchat/internal/fsutil"
)

var keyForm = regexp.MustCompile(`^lanchat-([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$`)

func TestGenerateParseRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		s, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !keyForm.MatchString(s) {
			t.Fatalf("%q is not in the documented form", s)
		}
		k, err := Parse(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		tag := k.Tag()
		if seen[tag] {
			t.Fatalf("two keys share tag %s", tag)
		}
		seen[tag] = true
		// How people type it: lower case, spaces, O for 0 and l for 1.
		typed := strings.ToLower(strings.ReplaceAll(s, "-", " "))
		typed = "lanchat-" + strings.NewReplacer("0", "o", "1", "l").Replace(typed[len("lanchat "):])
		k2, err := Parse(typed)
		if err != nil || k2.Tag() != tag || !bytes.Equal(k2.GossipKey(), k.GossipKey()) {
			t.Fatalf("typed %q: %v, or another key", typed, err)
		}
	}
}

// Every single mistyped character is caught (the 16-bit check), never
// read as another network's key.
func TestTypoIsCaught(t *testing.T) {
	// A fixed key, so that the test is the same every run: a random one
	// would, once in about 65 runs, meet a typo whose check collides.
	var secret [secretBits / 8]byte
	for i := range secret {
		secret[i] = byte(i*37 + 11)
	}
	s := format(secret)
	body := []byte(s)
	caught := 0
	for i := len(prefix); i < len(body); i++ {
		if body[i] == '-' {
			continue
		}
		orig := body[i]
		for _, c := range []byte(alphabet) {
			if c == orig {
				continue
			}
			body[i] = c
			_, err := Parse(string(body))
			if err == nil {
				t.Fatalf("%q (one character changed) parsed", body)
			}
			if errors.Is(err, ErrCheck) {
				caught++
			}
		}
		body[i] = orig
	}
	if caught == 0 {
		t.Fatal("no typo was reported as a check failure")
	}
	for _, bad := range []string{"", "lanchat-", "lanchat-AAAA", s + "-AAAA", strings.Replace(s, "lanchat-", "lanchot-", 1), s[:len(s)-1] + "U"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestDerivedKeysAreDistinctAndStable(t *testing.T) {
	s, _ := Generate()
	k, _ := Parse(s)
	g, st := k.GossipKey(), k.StreamKey()
	if len(g) != 32 || len(st) != 32 || bytes.Equal(g, st) {
		t.Fatalf("gossip %x stream %x", g, st)
	}
	if len(k.Tag()) != 8 || k.Label() != "lanchat/"+k.Tag() {
		t.Fatalf("tag %q label %q", k.Tag(), k.Label())
	}
	k2, _ := Parse(s)
	if !bytes.Equal(k2.StreamKey(), st) {
		t.Fatal("the same key derived another stream key")
	}
}

func TestPassphrase(t *testing.T) {
	if _, err := FromPassphrase("short"); !errors.Is(err, ErrShortPhrase) {
		t.Fatalf("short phrase: %v", err)
	}
	a, err := FromPassphrase("  correct horse battery staple  ")
	if err != nil || !a.Passphrase || a.Weak != "" {
		t.Fatalf("a good phrase: %+v, %v", a, err)
	}
	b, _ := FromPassphrase("correct horse battery staple")
	c, _ := FromPassphrase("correct horse battery stapler")
	if a.Tag() != b.Tag() || a.Tag() == c.Tag() {
		t.Fatalf("tags %s %s %s: the same phrase must give the same key, another phrase another", a.Tag(), b.Tag(), c.Tag())
	}
	// Weakness is judged before stretching; checked on its own, since
	// each Argon2id run costs a tenth of a second (seconds under -race).
	for _, weak := range []string{"password1", "aaaaaaaaaaaaaaaaaaaaaaa", "Summer2026!"} {
		if weakness(weak) == "" {
			t.Errorf("%q is not called weak", weak)
		}
	}
	for _, strong := range []string{"correct horse battery staple", "my cat eats 3 lemons on tuesdays"} {
		if w := weakness(strong); w != "" {
			t.Errorf("%q called weak: %s", strong, w)
		}
	}
}

func writeKeyFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "network.key")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadFile(t *testing.T) {
	k1, _ := Generate()
	k2, _ := Generate()
	ring, err := ReadFile(writeKeyFile(t, "# the office key\n"+k1+"\n\n"+k2+"\n", 0o600))
	if err != nil || len(ring) != 2 {
		t.Fatalf("two keys: %v, %v", ring, err)
	}
	p1, _ := Parse(k1)
	if ring[0].Tag() != p1.Tag() {
		t.Fatal("the first key in the file is not the first of the ring")
	}
	if _, err := ReadFile(writeKeyFile(t, k1+"\n", 0o644)); !errors.Is(err, ErrUnsafeFile) {
		t.Errorf("a 0644 key file: %v, want ErrUnsafeFile", err)
	}
	k3, _ := Generate()
	if _, err := ReadFile(writeKeyFile(t, k1+"\n"+k2+"\n"+k3+"\n", 0o600)); err == nil {
		t.Error("three keys accepted")
	}
	if _, err := ReadFile(writeKeyFile(t, "\n# nothing\n", 0o600)); err == nil {
		t.Error("an empty key file accepted")
	}
	if _, err := ReadFile(writeKeyFile(t, strings.Replace(k1, "lanchat-", "LANCHAT-", 1)[:20]+"\n", 0o600)); err == nil {
		t.Error("a truncated key was taken for a passphrase")
	}
	real := writeKeyFile(t, k1, 0o600)
	link := filepath.Join(t.TempDir(), "link.key")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(link); !errors.Is(err, fsutil.ErrSymlink) {
		t.Errorf("a symlinked key file: %v, want ErrSymlink", err)
	}
	if _, err := ReadFile(writeKeyFile(t, strings.Repeat("x", maxFile+1), 0o600)); err == nil {
		t.Error("a huge key file accepted")
	}
}

// FuzzParse: the key decoder never panics, and what it accepts prints
// back to a key that reads the same.
func FuzzParse(f *testing.F) {
	s, _ := Generate()
	for _, seed := range []string{s, strings.ToLower(s), "lanchat-", "", "lanchat-0000-0000-0000-0000-0000-0000-0000-0000", "lanchat-ILOU"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		k, err := Parse(line)
		if err != nil {
			return
		}
		if len(k.Tag()) != 8 {
			t.Fatalf("tag %q", k.Tag())
		}
	})
}
