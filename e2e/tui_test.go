//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// TestTerminalUI runs the terminal UI of two hosts in tmux, each on a
// node of its own: alice writes to bob in hers, and the message is read
// off bob's screen; bob's terminal is resized, and he switches rooms; a
// message he leaves unread is counted when his UI opens again.
func TestTerminalUI(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	lab := netlab.New(t, 2)
	alice := tm.open(t, lab.Hosts[0], "alice", 100, 30, "NO_COLOR=1")
	bob := tm.open(t, lab.Hosts[1], "bob", 100, 30)

	// Each lists the other, online, in its sidebar.
	alice.waitScreen(t, seeTimeout, "● bob")
	bob.waitScreen(t, seeTimeout, "● alice")

	// NO_COLOR: alice's screen has attributes at most, bob's colours.
	if c := colour.FindString(alice.screenEscapes(t)); c != "" {
		t.Errorf("with NO_COLOR alice's screen has a colour: %q", c)
	}
	if colour.FindString(bob.screenEscapes(t)) == "" {
		t.Errorf("without NO_COLOR bob's screen has no colour")
	}

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

	// A direct message bob does not open before he quits is counted
	// unread when his UI opens again, from his node's history.
	alice.typeLine(t, "/msg bob read me later")
	bob.waitRow(t, seeTimeout, "● alice", "1")
	bob.typeLine(t, "/quit")
	waitFor(t, stopTimeout, func() error {
		if tm.has(bob.name) {
			return fmt.Errorf("bob's UI still runs")
		}
		return nil
	})
	bob = tm.openOn(t, lab.Hosts[1], "bob-again", bob.dataDir, 100, 30)
	bob.waitRow(t, seeTimeout, "alice", "1")

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

// TestTerminalUIAttaches opens the UI on the data directory of a node
// that runs already (lanchat run): it attaches through the control
// socket, sends through that node, and quitting leaves the node running.
func TestTerminalUIAttaches(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	lab := netlab.New(t, 2)
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, []*node{alice}, []*node{bob}, "available")

	ui := tm.openOn(t, alice.host, "alice-ui", alice.dataDir, 100, 30)
	ui.waitScreen(t, seeTimeout, "attached")
	ui.waitScreen(t, seeTimeout, "● bob")
	ui.typeLine(t, "/msg bob through the running node")
	waitMessage(t, bob, alice.id(), "through the running node")

	ui.typeLine(t, "/quit")
	waitFor(t, stopTimeout, func() error {
		if tm.has(ui.name) {
			return fmt.Errorf("the UI still runs")
		}
		return nil
	})
	if alice.exited() {
		t.Fatal("quitting the UI stopped the node it was attached to")
	}
	if r := alice.cli("send", "bob", "still here"); r.code != 0 || !strings.Contains(r.stdout, "delivered") {
		t.Errorf("the node after the UI left: %v", r)
	}
}

// TestTerminalUIUnreachable: with traffic dropped between alice's and
// bob's hosts only, alice's UI marks bob ◌ (online for carol, not
// reachable from here) and his conversation's header says who vouches
// for him; when the link heals he is ● again.
func TestTerminalUIUnreachable(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	lab := netlab.New(t, 3)
	ui := tm.open(t, lab.Hosts[0], "alice", 100, 30)
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob"})
	startNode(t, lab.Hosts[2], nodeOpts{name: "carol"})
	ui.waitScreen(t, seeTimeout, "● bob")
	ui.waitScreen(t, seeTimeout, "● carol")
	ui.typeLine(t, "/msg bob")
	// The link is cut only once alice's node has verified bob: a peer
	// gossip alone vouches for is watched for reachability only after
	// its verification gives up (mesh/reach.go), tens of seconds later,
	// and the UI shows ● as soon as gossip lists him.
	waitFor(t, seeTimeout, func() error {
		ps, err := peersAt(t, lab.Hosts[0], ui.dataDir)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Name == "bob" && p.Verified {
				return nil
			}
		}
		return fmt.Errorf("alice has not verified bob yet: %+v", ps)
	})

	if err := lab.Hosts[0].BlockFrom(bob.host.Addr); err != nil {
		t.Fatal(err)
	}
	if err := bob.host.BlockFrom(lab.Hosts[0].Addr); err != nil {
		t.Fatal(err)
	}
	ui.waitScreen(t, 30*time.Second, "◌ bob")
	ui.waitScreen(t, seeTimeout, "unreachable from here, seen by 1 other")
	if scr := ui.screenNow(); !strings.Contains(scr, "● carol") {
		t.Errorf("carol, reachable, is not shown so:\n%s", scr)
	}

	for _, h := range []*netlab.Host{lab.Hosts[0], bob.host} {
		if err := h.Unblock(); err != nil {
			t.Fatal(err)
		}
	}
	ui.waitScreen(t, 30*time.Second, "● bob")
	waitFor(t, seeTimeout, func() error {
		if scr := ui.screenNow(); strings.Contains(scr, "unreachable") {
			return fmt.Errorf("healed, the screen still says unreachable:\n%s", scr)
		}
		return nil
	})
	ui.typeLine(t, "/quit")
}

// tmux is a tmux server of the test's own (its own socket), killed when
// the test ends.
type tmux struct {
	bin  string
	sock string
}

func newTmux(t testing.TB) *tmux {
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

func (tm *tmux) run(t testing.TB, args ...string) string {
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
func (tm *tmux) open(t testing.TB, host *netlab.Host, name string, w, h int, extraEnv ...string) *tmuxSession {
	t.Helper()
	return tm.openOn(t, host, name, newDataDir(t), w, h, extraEnv...)
}

// openOn is open on a given data directory.
func (tm *tmux) openOn(t testing.TB, host *netlab.Host, name, dataDir string, w, h int, extraEnv ...string) *tmuxSession {
	t.Helper()
	s := &tmuxSession{tm: tm, name: name, dataDir: dataDir}
	ns := host.Command(context.Background(), lanchatBin(t), "ui", "--name", name, "--data-dir", s.dataDir, "--log-level", "debug")
	var env []string
	for _, kv := range childEnv() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(append(env, "TERM=xterm-256color"), extraEnv...)
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

// colour matches an SGR escape that sets a colour (foreground or
// background, 8, 16, 256 or 24-bit), not one that only sets an attribute
// or goes back to the default colour (39, 49).
var colour = regexp.MustCompile(`\x1b\[(?:[0-9:]*;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])[;:m]`)

// screenEscapes is the screen with its attributes and colours as escapes.
func (s *tmuxSession) screenEscapes(t testing.TB) string {
	t.Helper()
	return s.tm.run(t, "capture-pane", "-p", "-e", "-t", s.name)
}

func (s *tmuxSession) screen(t testing.TB) string {
	t.Helper()
	return s.tm.run(t, "capture-pane", "-p", "-t", s.name)
}

// waitScreen waits until the screen shows want.
func (s *tmuxSession) waitScreen(t testing.TB, timeout time.Duration, want string) {
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
func (s *tmuxSession) waitRow(t testing.TB, timeout time.Duration, name, badge string) {
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
func (s *tmuxSession) typeText(t testing.TB, text string) {
	t.Helper()
	s.tm.run(t, "send-keys", "-t", s.name, "-l", text)
}

func (s *tmuxSession) keys(t testing.TB, keys ...string) {
	t.Helper()
	s.tm.run(t, append([]string{"send-keys", "-t", s.name}, keys...)...)
}

func (s *tmuxSession) typeLine(t testing.TB, text string) {
	t.Helper()
	s.typeText(t, text)
	s.keys(t, "Enter")
}

// BenchmarkTerminalUI measures, on two namespace hosts with a UI each:
// how long after a message is stored by bob's node it is on bob's
// screen (alice's `lanchat send` returns when bob's node has stored it;
// bob's screen is read with capture-pane every 2 ms, which the figure
// includes), and the CPU bob's UI process, its node included, uses idle.
func BenchmarkTerminalUI(b *testing.B) {
	tm := newTmux(b)
	lab := netlab.New(b, 3)
	alice := tm.open(b, lab.Hosts[0], "alice", 100, 30)
	bob := tm.open(b, lab.Hosts[1], "bob", 100, 30)
	// The baseline: a node without a UI (lanchat run), idle beside bob.
	carol := startNode(b, lab.Hosts[2], nodeOpts{name: "carol", logLevel: "info"})
	alice.waitScreen(b, seeTimeout, "● bob")
	bob.waitScreen(b, seeTimeout, "● alice")
	bob.typeLine(b, "/msg alice")
	bob.waitScreen(b, seeTimeout, "no messages yet")

	var lat []time.Duration
	for i := range 30 {
		text := fmt.Sprintf("latency probe %d", i)
		r := runCLI(b, lab.Hosts[0], "send", "--data-dir", alice.dataDir, "bob", text)
		stored := time.Now()
		if r.code != 0 || !strings.Contains(r.stdout, "delivered") {
			b.Fatalf("send: %v", r)
		}
		for !strings.Contains(bob.screenNow(), text) {
			if time.Since(stored) > seeTimeout {
				b.Fatalf("%q not on bob's screen", text)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(stored))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median-to-screen")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-max-to-screen")
	b.Logf("stored → on screen, %d messages: median %v, p90 %v, max %v", len(lat),
		lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*9/10].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))

	pid, base := bob.uiPID(b), carol.cmd.Process.Pid
	const idle = 20 * time.Second
	time.Sleep(2 * time.Second) // let the last frame and receipts settle
	t0, c0 := cpuTicks(b, pid), cpuTicks(b, base)
	time.Sleep(idle)
	// USER_HZ is 100 on Linux.
	used := time.Duration(cpuTicks(b, pid)-t0) * 10 * time.Millisecond
	baseUsed := time.Duration(cpuTicks(b, base)-c0) * 10 * time.Millisecond
	pct := 100 * used.Seconds() / idle.Seconds()
	b.ReportMetric(pct, "%-cpu-idle")
	b.Logf("idle for %v: bob's UI process (its node included) %v of CPU, %.2f%%; carol's lanchat run beside it %v, %.2f%%",
		idle, used, pct, baseUsed, 100*baseUsed.Seconds()/idle.Seconds())
}

// uiPID is the pid of the lanchat process in the session: tmux's pane
// runs `timeout`, whose one child it is.
func (s *tmuxSession) uiPID(t testing.TB) int {
	t.Helper()
	out := strings.TrimSpace(s.tm.run(t, "display-message", "-p", "-t", s.name, "#{pane_pid}"))
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%s/task/%s/children", out, out))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(kids), &pid); err != nil {
		t.Fatalf("children of %s: %q", out, kids)
	}
	return pid
}

// cpuTicks is the user and system CPU of pid, in clock ticks.
func cpuTicks(t testing.TB, pid int) int64 {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	var u, s int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return u + s
}
