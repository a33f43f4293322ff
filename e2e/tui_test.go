//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// TestTerminalUI runs the terminal UI of two hosts in tmux, each on a
// node of its own: alice writes to bob in hers, and the message is read
// off bob's screen; bob's terminal is resized, and he switches rooms.
func TestTerminalUI(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	lab := netlab.New(t, 2)
	alice := tm.open(t, lab.Hosts[0], "alice", 100, 30)
	bob := tm.open(t, lab.Hosts[1], "bob", 100, 30)

	// Each lists the other, online, in its sidebar.
	alice.waitScreen(t, seeTimeout, "● bob")
	bob.waitScreen(t, seeTimeout, "● alice")

	alice.typeLine(t, "/msg bob hello from alice's screen")
	sent := time.Now()
	// Bob sees it arrive as an unread message beside alice's name, and,
	// opening the conversation, the message itself.
	bob.waitRow(t, seeTimeout, "● alice", "1")
	t.Logf("typed on alice's screen → counted on bob's: %v", time.Since(sent).Round(time.Millisecond))
	bob.typeLine(t, "/msg alice")
	bob.waitScreen(t, seeTimeout, "alice: hello from alice's screen")
	// Alice's copy shows it read: bob's screen showed it.
	alice.waitScreen(t, seeTimeout, "hello from alice's screen ✓✓ read")

	// A bigger terminal: the screen follows, the conversation stays.
	tm.run(t, "resize-window", "-t", "bob", "-x", "140", "-y", "40")
	waitFor(t, seeTimeout, func() error {
		s := bob.screen(t)
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		if len(lines) != 40 || !strings.Contains(s, "alice: hello from alice's screen") {
			return fmt.Errorf("after the resize, %d rows:\n%s", len(lines), s)
		}
		if !strings.Contains(lines[38], "peers online") {
			return fmt.Errorf("the status bar is not on row 39: %q", lines[38])
		}
		// The day's separator runs to the right edge (tmux trims
		// trailing blanks, not rules).
		for _, l := range lines {
			if strings.Contains(l, "───") && len([]rune(l)) == 140 {
				return nil
			}
		}
		return fmt.Errorf("no separator across the 140 columns:\n%s", s)
	})

	// A room: alice writes in #general; bob, in his conversation with
	// alice, switches to it with the quick switcher.
	alice.keys(t, "C-k")
	alice.typeText(t, "gen")
	alice.keys(t, "Enter")
	alice.typeLine(t, "standup in five")
	bob.waitRow(t, seeTimeout, "#general", "1")
	bob.keys(t, "C-k")
	bob.typeText(t, "gene")
	bob.keys(t, "Enter")
	bob.waitScreen(t, seeTimeout, "alice: standup in five")

	// Quitting ends each UI and its node; alice's says goodbye.
	bob.typeLine(t, "/quit")
	alice.waitScreen(t, offlineWithin, "○ bob")
	alice.typeLine(t, "/quit")
	for _, s := range []*tmuxSession{alice, bob} {
		waitFor(t, stopTimeout, func() error {
			if tm.has(s.name) {
				return fmt.Errorf("%s's UI still runs", s.name)
			}
			return nil
		})
	}
}

// tmux is a tmux server of the test's own (its own socket), killed when
// the test ends.
type tmux struct {
	bin  string
	sock string
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed; .ci/run must install it")
		}
		t.Skip("tmux is not installed: the UI test runs the UIs in it")
	}
	tm := &tmux{bin: bin, sock: filepath.Join(suite.dir, fmt.Sprintf("tmux-%d.sock", time.Now().UnixNano()))}
	t.Cleanup(func() {
		_ = exec.Command(tm.bin, "-S", tm.sock, "kill-server").Run()
		os.Remove(tm.sock)
	})
	return tm
}

func (tm *tmux) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, tm.bin, append([]string{"-S", tm.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tm *tmux) has(name string) bool {
	return exec.Command(tm.bin, "-S", tm.sock, "has-session", "-t", name).Run() == nil
}

type tmuxSession struct {
	tm      *tmux
	name    string
	dataDir string
}

// open starts `lanchat ui` on host h in a new tmux session w×h cells.
// The UI runs its own node (none runs on its data directory), its log in
// the data directory; `timeout` ends it should the test die before its
// cleanup.
func (tm *tmux) open(t *testing.T, host *netlab.Host, name string, w, h int) *tmuxSession {
	t.Helper()
	s := &tmuxSession{tm: tm, name: name, dataDir: newDataDir(t)}
	ns := host.Command(context.Background(), lanchatBin(t), "ui", "--name", name, "--data-dir", s.dataDir, "--log-level", "debug")
	var env []string
	for _, kv := range childEnv() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "TERM=xterm-256color", "NO_COLOR=1")
	shell := "exec env -i " + quoteAll(env) + " timeout 300 " + quoteAll(ns.Args)
	tm.run(t, "new-session", "-d", "-s", name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), shell)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's screen at the end:\n%s", name, s.screenNow())
			if log, err := os.ReadFile(filepath.Join(s.dataDir, "lanchat.log")); err == nil {
				t.Logf("%s's log (tail):\n%s", name, tail(string(log), 3000))
			}
		}
	})
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func (s *tmuxSession) screenNow() string {
	out, _ := exec.Command(s.tm.bin, "-S", s.tm.sock, "capture-pane", "-p", "-t", s.name).CombinedOutput()
	return string(out)
}

func (s *tmuxSession) screen(t *testing.T) string {
	t.Helper()
	return s.tm.run(t, "capture-pane", "-p", "-t", s.name)
}

// waitScreen waits until the screen shows want.
func (s *tmuxSession) waitScreen(t *testing.T, timeout time.Duration, want string) {
	t.Helper()
	waitFor(t, timeout, func() error {
		if scr := s.screenNow(); !strings.Contains(scr, want) {
			return fmt.Errorf("%s's screen does not show %q:\n%s", s.name, want, scr)
		}
		return nil
	})
}

// waitRow waits until a row of the sidebar holds name and ends with
// badge (an unread count).
func (s *tmuxSession) waitRow(t *testing.T, timeout time.Duration, name, badge string) {
	t.Helper()
	waitFor(t, timeout, func() error {
		scr := s.screenNow()
		for _, l := range strings.Split(scr, "\n") {
			side, _, _ := strings.Cut(l, "│")
			if strings.Contains(side, name) && strings.HasSuffix(strings.TrimSpace(side), " "+badge) {
				return nil
			}
		}
		return fmt.Errorf("%s's sidebar has no row %q … %q:\n%s", s.name, name, badge, scr)
	})
}

// typeText types text literally; keys presses tmux key names.
func (s *tmuxSession) typeText(t *testing.T, text string) {
	t.Helper()
	s.tm.run(t, "send-keys", "-t", s.name, "-l", text)
}

func (s *tmuxSession) keys(t *testing.T, keys ...string) {
	t.Helper()
	s.tm.run(t, append([]string{"send-keys", "-t", s.name}, keys...)...)
}

func (s *tmuxSession) typeLine(t *testing.T, text string) {
	t.Helper()
	s.typeText(t, text)
	s.keys(t, "Enter")
}
