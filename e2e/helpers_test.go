//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// Timeouts. Generous, so a loaded two-core machine passes, but bounded, so
// a broken binary fails in minutes, not hours.
const (
	readyTimeout  = 30 * time.Second // start → "ready" line
	stopTimeout   = 15 * time.Second // SIGTERM → exit
	cliTimeout    = 60 * time.Second // one CLI command, one-shot discovery included
	seeTimeout    = 20 * time.Second // nodes find each other / see a change
	offlineWithin = 30 * time.Second // failure detection (the target is ~8 s)
	healWithin    = 30 * time.Second // the target after a heal or replug
	pollEvery     = 50 * time.Millisecond
)

// waitFor polls cond until it returns nil and fails the test with cond's
// last error if that has not happened within timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// peerRef names a peer in an event.
type peerRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// event is one line of `lanchat run --json`: the union of the fields of
// every event type.
type event struct {
	Type string `json:"type"` // ready, message, presence, warning

	// ready (ID and Name are also a message's id and a ready's name)
	ID         string `json:"id"`
	Name       string `json:"name"`
	Addr       string `json:"addr"`
	GossipPort int    `json:"gossip_port"`
	Port       int    `json:"port"`
	Control    string `json:"control"`

	// message
	From     peerRef `json:"from"`
	Text     string  `json:"text"`
	Time     string  `json:"time"`
	Outgoing bool    `json:"outgoing"`

	// presence
	Peer       peerRef `json:"peer"`
	State      string  `json:"state"`
	StatusText string  `json:"status_text"`
	Change     string  `json:"change"`

	raw string    // the line as printed
	at  time.Time // when the line was read
}

// peer is one entry of `lanchat peers --json`.
type peer struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	State      string          `json:"state"`
	StatusText string          `json:"status_text"`
	Addr       string          `json:"addr"`
	Verified   bool            `json:"verified"`
	Trusted    bool            `json:"trusted"`
	Warning    string          `json:"warning"`
	LastSeen   json.RawMessage `json:"last_seen"`
}

// nodeOpts say how to start a node.
type nodeOpts struct {
	name     string   // --name; required
	dataDir  string   // --data-dir; a new temporary directory if empty
	args     []string // more global flags (--no-mdns, --join …)
	logLevel string   // --log-level; "debug" if empty
	bin      string   // the lanchat binary; the one under test if empty (a baseline's, to compare two builds in one lab)
	// addr is the address the ready line must give; empty: the host's
	// IPv4 address, or its IPv6 one in a lab without IPv4, or any in a
	// link-local-only lab.
	addr string
}

// node is a running `lanchat run --json` process on a lab host.
type node struct {
	t       testing.TB
	host    *netlab.Host
	name    string
	dataDir string
	addr    string    // the address the ready line must give
	ready   event     // the first line; zero until it arrived
	started time.Time // just before the process was started

	cmd      *exec.Cmd
	stdout   *os.File      // read end of the node's stdout
	stderr   syncBuffer    // the node's log
	done     chan struct{} // closed once the process has exited and been reaped
	readDone chan struct{} // closed once stdout is read to its end (or closed)

	mu     sync.Mutex // guards the fields below
	events []event    // every line read, in order, ready included
	bad    []string   // lines that were not JSON events
	state  *os.ProcessState
}

// startNode starts a node and waits for its ready line. The node is stopped
// and reaped when the test ends; if the test failed, its log is printed.
func startNode(t testing.TB, h *netlab.Host, o nodeOpts) *node {
	t.Helper()
	n := launchNode(t, h, o)
	if err := n.waitReady(readyTimeout); err != nil {
		t.Fatal(err)
	}
	return n
}

// startNodes starts one node per host, concurrently, named by names.
func startNodes(t testing.TB, hosts []*netlab.Host, names ...string) []*node {
	t.Helper()
	if len(names) > len(hosts) {
		t.Fatalf("%d names for %d hosts", len(names), len(hosts))
	}
	nodes := make([]*node, len(names))
	for i, name := range names {
		nodes[i] = launchNode(t, hosts[i], nodeOpts{name: name})
	}
	for _, n := range nodes {
		if err := n.waitReady(readyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// launchNode starts `lanchat run --json` without waiting for it to be ready.
func launchNode(t testing.TB, h *netlab.Host, o nodeOpts) *node {
	t.Helper()
	bin := o.bin
	if bin == "" {
		bin = lanchatBin(t)
	}
	if o.dataDir == "" {
		o.dataDir = newDataDir(t)
	}
	if o.logLevel == "" {
		o.logLevel = "debug"
	}
	args := []string{"run", "--json", "--name", o.name, "--data-dir", o.dataDir, "--log-level", o.logLevel}
	args = append(args, o.args...)

	n := &node{
		t:        t,
		host:     h,
		name:     o.name,
		dataDir:  o.dataDir,
		addr:     o.addr,
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
	}
	// The node lives until the test's cleanup stops it, not until some
	// context ends.
	n.cmd = h.Command(context.Background(), bin, args...)
	n.cmd.Env = childEnv()
	// Its own process group, so Kill takes any child it started along.
	n.cmd.SysProcAttr.Setpgid = true
	n.cmd.Stderr = &n.stderr
	// Whatever the node leaves behind, Wait returns soon after it exits.
	n.cmd.WaitDelay = 2 * time.Second
	// A pipe of our own rather than StdoutPipe, so that reaping the process
	// does not wait for the reading and the reading never blocks the reaping.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	n.stdout = pr
	n.cmd.Stdout = pw
	n.started = time.Now()
	err = n.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("start %s on %s: %v", o.name, h, err)
	}
	go n.read()
	go n.reap()
	t.Cleanup(n.cleanup)
	return n
}

// reap waits for the process to end.
func (n *node) reap() {
	_ = n.cmd.Wait()
	n.mu.Lock()
	n.state = n.cmd.ProcessState
	n.mu.Unlock()
	close(n.done)
}

// read collects the node's stdout lines until the pipe ends.
func (n *node) read() {
	defer close(n.readDone)
	stdout := n.stdout
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		at := time.Now()
		line := sc.Text()
		var ev event
		err := json.Unmarshal([]byte(line), &ev)
		n.mu.Lock()
		if err != nil || ev.Type == "" {
			n.bad = append(n.bad, line)
		} else {
			ev.raw, ev.at = line, at
			n.events = append(n.events, ev)
		}
		n.mu.Unlock()
	}
	if err := sc.Err(); err != nil {
		n.mu.Lock()
		n.bad = append(n.bad, "reading stdout: "+err.Error())
		n.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, stdout) // never block the node on a full pipe
}

// finishReading waits a little for the rest of stdout after the process
// ended, then closes the pipe (a child of the node may still hold it open).
func (n *node) finishReading() {
	select {
	case <-n.readDone:
	case <-time.After(2 * time.Second):
	}
	n.stdout.Close()
	<-n.readDone
}

// waitReady waits for the ready line and checks it.
func (n *node) waitReady(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		n.mu.Lock()
		var first *event
		if len(n.events) > 0 {
			first = &n.events[0]
		}
		bad := slices.Clone(n.bad)
		n.mu.Unlock()
		if first == nil && len(bad) > 0 {
			return fmt.Errorf("%s: printed %q before a ready line, want JSON events only", n, bad[0])
		}
		if first != nil {
			if first.Type != "ready" {
				return fmt.Errorf("%s: first line is %s, want a ready event", n, first.raw)
			}
			want := n.addr
			switch {
			case want != "":
			case n.host.Addr.IsValid():
				want = n.host.Addr.String()
			case n.host.Addr6.IsValid():
				want = n.host.Addr6.String()
			default:
				want = first.Addr
			}
			if len(first.ID) != 52 || first.Name != n.name || first.Addr != want ||
				first.GossipPort <= 0 || first.Port <= 0 || first.Control == "" {
				return fmt.Errorf("%s: bad ready line %s (want a 52-character id, name %q, addr %s, both ports, control)",
					n, first.raw, n.name, want)
			}
			n.ready = *first
			return nil
		}
		select {
		case <-n.done:
			n.finishReading()
			if n.firstEvent() != nil {
				continue // the ready line was still in the pipe
			}
			return fmt.Errorf("%s exited before it was ready (%v); its log:\n%s", n, n.exitState(), n.stderr.Tail(64<<10))
		case <-deadline:
			return fmt.Errorf("%s: no ready line within %v", n, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// firstEvent returns the first event the node printed, nil if none yet.
func (n *node) firstEvent() *event {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.events) == 0 {
		return nil
	}
	ev := n.events[0]
	return &ev
}

func (n *node) String() string { return n.name + "@" + n.host.Name }

// id is the node's peer id, from its ready line.
func (n *node) id() string { return n.ready.ID }

// gossipAddr is host:port of the node's gossip, for --join.
func (n *node) gossipAddr() string {
	return net.JoinHostPort(n.ready.Addr, strconv.Itoa(n.ready.GossipPort))
}

// exited reports whether the process has ended.
func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// exitState is how the process ended, nil while it runs.
func (n *node) exitState() *os.ProcessState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// waitExit waits for the process to end and returns its exit code (-1 if a
// signal killed it).
func (n *node) waitExit(timeout time.Duration) (int, error) {
	select {
	case <-n.done:
		return n.exitState().ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %v", n, timeout)
	}
}

// Stop sends SIGTERM, a clean exit, and returns the exit code. A node that
// does not exit within stopTimeout is killed and the test fails.
func (n *node) Stop() int {
	n.t.Helper()
	if n.exited() {
		return n.exitState().ExitCode()
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	code, err := n.waitExit(stopTimeout)
	if err != nil {
		n.Kill()
		n.t.Errorf("%s ignored SIGTERM: %v", n, err)
		return -1
	}
	return code
}

// Kill sends SIGKILL, a crash, to the node (and any child of it) and waits
// until the process is gone.
func (n *node) Kill() {
	n.t.Helper()
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	if _, err := n.waitExit(stopTimeout); err != nil {
		n.t.Errorf("%s survived SIGKILL: %v", n, err)
	}
}

// cleanup stops the node if it still runs and, if the test failed, prints
// what the node said.
func (n *node) cleanup() {
	if !n.exited() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		if _, err := n.waitExit(stopTimeout); err != nil {
			n.t.Errorf("%s did not exit within %v of SIGTERM", n, stopTimeout)
		}
	}
	// Whatever is left of the process group goes.
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
	n.finishReading()
	n.mu.Lock()
	bad := slices.Clone(n.bad)
	evs := slices.Clone(n.events)
	n.mu.Unlock()
	if len(bad) > 0 {
		n.t.Errorf("%s printed lines on stdout that are not JSON events:\n%s", n, strings.Join(bad, "\n"))
	}
	if n.t.Failed() {
		var b strings.Builder
		for _, ev := range evs {
			fmt.Fprintf(&b, "  %s %s\n", ev.at.Format("15:04:05.000"), ev.raw)
		}
		n.t.Logf("=== %s (id %.12s, data dir %s), exit %v\n--- events:\n%s--- log (stderr):\n%s",
			n, n.ready.ID, n.dataDir, n.exitState(), b.String(), n.stderr.Tail(256<<10))
	}
}

// eventsOf returns a copy of the node's events of one type.
func (n *node) eventsOf(typ string) []event {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []event
	for _, ev := range n.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// presence returns the latest presence event the node printed about peer
// id, and whether there is one.
func (n *node) presence(id string) (event, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.events) - 1; i >= 0; i-- {
		if ev := n.events[i]; ev.Type == "presence" && ev.Peer.ID == id {
			return ev, true
		}
	}
	return event{}, false
}

// presenceSince returns the first presence event about peer id in state
// that the node printed at or after since.
func (n *node) presenceSince(id, state string, since time.Time) (event, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ev := range n.events {
		if ev.Type == "presence" && ev.Peer.ID == id && ev.State == state && !ev.at.Before(since) {
			return ev, true
		}
	}
	return event{}, false
}

// received returns the messages the node received (not those it sent).
func (n *node) received() []event {
	var out []event
	for _, ev := range n.eventsOf("message") {
		if !ev.Outgoing {
			out = append(out, ev)
		}
	}
	return out
}

// seesState returns nil if each observer's latest presence event about each
// subject says state.
func seesState(observers, subjects []*node, state string) error {
	var bad []string
	for _, o := range observers {
		for _, s := range subjects {
			if o == s {
				continue
			}
			ev, ok := o.presence(s.id())
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s has no presence event about %s", o, s))
			case ev.State != state:
				bad = append(bad, fmt.Sprintf("%s sees %s %s", o, s, ev.State))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("want %s: %s", state, strings.Join(bad, "; "))
	}
	return nil
}

// waitSees waits until every observer's events say each subject is in
// state.
func waitSees(t testing.TB, timeout time.Duration, observers, subjects []*node, state string) {
	t.Helper()
	waitFor(t, timeout, func() error { return seesState(observers, subjects, state) })
}

// waitMessage waits until n has received text (surrounding space ignored)
// from the peer with id from, and returns the message event.
func waitMessage(t testing.TB, n *node, from, text string) event {
	t.Helper()
	var got event
	waitFor(t, seeTimeout, func() error {
		for _, m := range n.received() {
			if strings.TrimSpace(m.Text) == strings.TrimSpace(text) {
				if m.From.ID != from {
					return fmt.Errorf("%s got %q from %.12s, want from %.12s", n, text, m.From.ID, from)
				}
				got = m
				return nil
			}
		}
		return fmt.Errorf("%s has not received %q (has %d messages)", n, text, len(n.received()))
	})
	return got
}

// cliResult is what a CLI command printed and how it exited.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("lanchat %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs lanchat with args on host h and returns what it printed and
// its exit code. It fails the test only if the command cannot run or hangs.
func runCLI(t testing.TB, h *netlab.Host, args ...string) cliResult {
	t.Helper()
	return runCLIInput(t, h, "", args...)
}

// runCLIInput is runCLI with stdin.
func runCLIInput(t testing.TB, h *netlab.Host, stdin string, args ...string) cliResult {
	t.Helper()
	r, err := tryCLI(h, lanchatBin(t), stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryCLI is runCLI for use off the test goroutine: it returns its error.
func tryCLI(h *netlab.Host, bin, stdin string, args ...string) (cliResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := h.Command(ctx, bin, args...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("lanchat %s on %s: no answer within %v\nstderr:\n%s", strings.Join(args, " "), h, cliTimeout, r.stderr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		return r, fmt.Errorf("lanchat %s on %s: %w", strings.Join(args, " "), h, err)
	}
	return r, nil
}

// cli runs a command against the node's data directory (so through its
// control socket) on its host.
func (n *node) cli(args ...string) cliResult {
	n.t.Helper()
	return runCLI(n.t, n.host, append([]string{"--data-dir", n.dataDir}, args...)...)
}

// peers asks the node for `peers --json`.
func (n *node) peers() ([]peer, error) { return peersAt(n.t, n.host, n.dataDir) }

// peersAt asks the node of dataDir on host h (a node or a UI's own) for
// `peers --json`.
func peersAt(t testing.TB, h *netlab.Host, dataDir string) ([]peer, error) {
	r, err := tryCLI(h, lanchatBin(t), "", "--data-dir", dataDir, "peers", "--json")
	if err != nil {
		return nil, err
	}
	return parsePeers(r)
}

// parsePeers decodes the output of `peers --json`.
func parsePeers(r cliResult) ([]peer, error) {
	if r.code != 0 {
		return nil, fmt.Errorf("%v", r)
	}
	var ps []peer
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
		return nil, fmt.Errorf("decode %v: %w", r, err)
	}
	return ps, nil
}

// entries returns the entries of ps with id.
func entries(ps []peer, id string) []peer {
	var out []peer
	for _, p := range ps {
		if p.ID == id {
			out = append(out, p)
		}
	}
	return out
}

// listsState returns nil if `peers --json` of observer lists each subject
// exactly once, in state (and verified, if verified is set).
func listsState(observer *node, subjects []*node, state string, verified bool) error {
	ps, err := observer.peers()
	if err != nil {
		return err
	}
	var bad []string
	for _, s := range subjects {
		if s == observer {
			continue
		}
		es := entries(ps, s.id())
		switch {
		case len(es) != 1:
			bad = append(bad, fmt.Sprintf("%d entries for %s", len(es), s))
		case es[0].State != state:
			bad = append(bad, fmt.Sprintf("%s is %s", s, es[0].State))
		case verified && !es[0].Verified:
			bad = append(bad, fmt.Sprintf("%s is not verified", s))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s peers --json, want %s: %s\n%v", observer, state, strings.Join(bad, "; "), ps)
	}
	return nil
}

// childEnv is the environment of every lanchat process: the test's, without
// LANCHAT_* settings that would change its behaviour, with a HOME of its
// own.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LANCHAT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+suite.home)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns at most the last max bytes, from a line start.
func (b *syncBuffer) Tail(max int) string {
	s := b.String()
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[…]\n" + s
}
