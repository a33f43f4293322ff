package node

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lanchat/internal/fsutil"
)

// TestCheckDataDirModes pins the rule for a data directory's mode and
// owner: another user's, or one others may write to (who could replace
// control.sock and read what is sent), is refused; one lanchat creates
// is 0700; an existing 0755 one of ours is tightened, and logged.
func TestCheckDataDirModes(t *testing.T) {
	otherUID := 4242
	cases := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		wantErr  []string // substrings of the error; nil: no error
		wantMode os.FileMode
		wantLog  string
	}{
		{name: "created", setup: func(*testing.T, string) {}, wantMode: 0o700},
		{name: "created under a loose umask", setup: func(t *testing.T, _ string) {
			old := syscall.Umask(0) // tests of this package do not run in parallel
			t.Cleanup(func() { syscall.Umask(old) })
		}, wantMode: 0o700},
		{name: "existing 0700", setup: mkdirMode(0o700), wantMode: 0o700},
		{name: "existing 0755 is tightened", setup: mkdirMode(0o755), wantMode: 0o700, wantLog: "tightened"},
		{name: "existing 0750 is tightened", setup: mkdirMode(0o750), wantMode: 0o700, wantLog: "tightened"},
		{name: "world-writable", setup: mkdirMode(0o777), wantErr: []string{"mode 0777", "chmod 700"}, wantMode: 0o777},
		{name: "group-writable", setup: mkdirMode(0o770), wantErr: []string{"mode 0770", "chmod 700"}, wantMode: 0o770},
		{name: "sticky world-writable", setup: mkdirMode(0o1777), wantErr: []string{"chmod 700"}},
		{name: "another user's", setup: func(t *testing.T, dir string) {
			mkdirMode(0o700)(t, dir)
			if err := os.Chown(dir, otherUID, otherUID); err != nil {
				skipUnlessCI(t, "cannot chown to another uid: %v", err)
			}
		}, wantErr: []string{"owned by uid 4242"}, wantMode: 0o700},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tc.setup(t, dir)
			var logBuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			err := checkDataDir(dir, log)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("checkDataDir: %v", err)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("checkDataDir accepted it")
				}
				if !errors.Is(err, ErrUnsafeDataDir) {
					t.Errorf("error %v is not ErrUnsafeDataDir", err)
				}
				for _, s := range append(tc.wantErr, dir) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
			}
			fi, serr := os.Stat(dir)
			if serr != nil {
				t.Fatal(serr)
			}
			if tc.wantMode != 0 && fi.Mode().Perm() != tc.wantMode {
				t.Errorf("mode %04o, want %04o", fi.Mode().Perm(), tc.wantMode)
			}
			if !strings.Contains(logBuf.String(), tc.wantLog) || (tc.wantLog == "" && logBuf.Len() > 0) {
				t.Errorf("log %q, want it to say %q", logBuf.String(), tc.wantLog)
			}
		})
	}
}

func mkdirMode(mode os.FileMode) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
}

// skipUnlessCI skips a test that cannot run here, but fails it under CI.
func skipUnlessCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestHostilePresenceAndLock pins that presence.json and the lock are not
// read through a symbolic link, and that an oversized presence.json is
// refused and left as it was.
func TestHostilePresenceAndLock(t *testing.T) {
	t.Run("presence too large", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, presenceName)
		os.WriteFile(p, bytes.Repeat([]byte(" "), maxPresenceFile+1), 0o600)
		if _, err := loadPresence(dir); !errors.Is(err, fsutil.ErrTooLarge) {
			t.Fatalf("loadPresence: %v, want ErrTooLarge", err)
		}
		if fi, _ := os.Stat(p); fi.Size() != maxPresenceFile+1 {
			t.Errorf("presence.json changed")
		}
	})
	for _, name := range []string{presenceName, "lock"} {
		t.Run(name+" is a symlink", func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(t.TempDir(), "elsewhere")
			os.WriteFile(target, []byte(`{"state":0}`), 0o600)
			os.Symlink(target, filepath.Join(dir, name))
			var err error
			if name == "lock" {
				var f *os.File
				f, err = lockDir(dir)
				if f != nil {
					f.Close()
				}
			} else {
				_, err = loadPresence(dir)
			}
			if !errors.Is(err, fsutil.ErrSymlink) {
				t.Fatalf("error %v, want ErrSymlink", err)
			}
		})
	}
}
