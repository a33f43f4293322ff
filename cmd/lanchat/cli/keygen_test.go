package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"lanchat/internal/netkey"
)

// keygen prints a key a node can read back; -o writes it 0600 and never
// replaces an existing file.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := lanchat(t, dir, "keygen")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := netkey.Parse(strings.TrimSpace(out)); err != nil {
		t.Fatalf("printed %q: %v", out, err)
	}
	path := filepath.Join(dir, "network.key")
	if code, _, errs := lanchat(t, dir, "keygen", "-o", path); code != exitOK {
		t.Fatalf("keygen -o: exit %d: %s", code, errs)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	ring, err := netkey.ReadFile(path)
	if err != nil || len(ring) != 1 {
		t.Fatalf("read back: %v, %v", ring, err)
	}
	before, _ := os.ReadFile(path)
	if code, _, errs := lanchat(t, dir, "keygen", "-o", path); code == exitOK || !strings.Contains(errs, "exists") {
		t.Fatalf("second keygen -o on the same file: exit %d, %q", code, errs)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("the existing key was changed")
	}
}

// Every global flag that takes a value is known to splitCommand, or a
// command after it would be taken for the flag's value.
func TestValueFlagsCoverEveryGlobalFlag(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	(&globalArgs{}).register(fs, "info")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Value.Type() != "bool" && !valueFlags[f.Name] {
			t.Errorf("--%s takes a value but is not in valueFlags", f.Name)
		}
	})
}
