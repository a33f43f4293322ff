//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// TestTerminalUIFilesAndTyping: in two UIs on two hosts, bob sees alice
// typing in #general, then to him, in his status bar; alice's status set
// from another terminal (lanchat status) shows in her UI's status bar and
// in bob's sidebar; alice offers a file with /file, bob sees the offer in
// their conversation and accepts it with one key (Alt-Y), and both
// screens end on the transfer verified, with the file in bob's
// downloads, byte for byte.
func TestTerminalUIFilesAndTyping(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	lab := netlab.New(t, 2)
	alice := tm.open(t, lab.Hosts[0], "alice", 100, 30)
	bob := tm.open(t, lab.Hosts[1], "bob", 100, 30)
	alice.waitScreen(t, seeTimeout, "● bob")
	bob.waitScreen(t, seeTimeout, "● alice")

	// Both open in #general: typing there shows on bob's screen, once
	// each node has the other in the room's log (a keystroke every 3 s
	// until then: the UI tells its node at most that often).
	waitFor(t, seeTimeout, func() error {
		alice.typeText(t, "x")
		if scr := bob.screenNow(); !strings.Contains(scr, "alice is typing…") {
			time.Sleep(3 * time.Second)
			return fmt.Errorf("bob's screen does not show alice typing in #general:\n%s", scr)
		}
		return nil
	})
	alice.keys(t, "C-c")

	// Another terminal on alice's host sets her status through her UI's
	// node: her status bar and bob's sidebar show it.
	if r := runCLI(t, lab.Hosts[0], "status", "--data-dir", alice.dataDir, "away", "at lunch"); r.code != 0 || !strings.Contains(r.stdout, "you are now away: at lunch") {
		t.Fatalf("lanchat status: %v", r)
	}
	alice.waitScreen(t, seeTimeout, " alice (away: at lunch) ·")
	bob.waitScreen(t, seeTimeout, "◐ alice")

	alice.typeLine(t, "/msg bob")
	bob.typeLine(t, "/msg alice")
	alice.typeText(t, "are you th")
	bob.waitScreen(t, seeTimeout, "alice is typing…")
	alice.keys(t, "C-c")

	data := make([]byte, 3<<20+123)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	alice.typeLine(t, "/file "+src)
	bob.waitScreen(t, seeTimeout, "⇩ alice offers report.bin (1 file, 3.0 MiB)")
	bob.waitScreen(t, seeTimeout, "Alt-Y accept · Alt-N decline")
	alice.waitScreen(t, seeTimeout, "⇧ you offer report.bin (1 file, 3.0 MiB) to bob")
	bob.keys(t, "M-y")
	bob.waitScreen(t, seeTimeout, "✓ received and verified: 1 file, 3.0 MiB")
	alice.waitScreen(t, seeTimeout, "✓ bob verified everything: 1 file, 3.0 MiB")
	got, err := os.ReadFile(filepath.Join(bob.dataDir, "downloads", "report.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's copy: %d bytes, %v; want the %d sent", len(got), err, len(data))
	}
	for _, s := range []*tmuxSession{alice, bob} {
		s.typeLine(t, "/quit")
		waitFor(t, stopTimeout, func() error {
			if tm.has(s.name) {
				return fmt.Errorf("%s's UI still runs", s.name)
			}
			return nil
		})
	}
}
