//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

func TestDiscoveryBothWays(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")

	// Each sees each, through events and through peers --json, verified.
	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, n := range nodes {
		waitFor(t, seeTimeout, func() error { return listsState(n, nodes, "available", true) })
	}
	for _, n := range nodes {
		ps, err := n.peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range nodes {
			if o == n {
				continue
			}
			p := entries(ps, o.id())[0]
			if p.Name != o.name {
				t.Errorf("%s lists %s with name %q", n, o, p.Name)
			}
			// addr may carry a port.
			if host, _, _ := strings.Cut(p.Addr, ":"); host != o.host.Addr.String() {
				t.Errorf("%s lists %s at %q, want %s", n, o, p.Addr, o.host.Addr)
			}
		}
	}

	// id --json through the control socket names the node.
	for _, n := range nodes {
		r := n.cli("id", "--json")
		var got peerRef
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil {
			t.Fatalf("%v", r)
		}
		if got.ID != n.id() || got.Name != n.name {
			t.Errorf("%s id --json = %+v, want id %s name %s", n, got, n.id(), n.name)
		}
	}
}

func TestPresenceChangeSeenByOthers(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, others := nodes[0], nodes[1:]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	for _, tc := range []struct {
		name       string
		args       []string
		state      string
		statusText string
	}{
		{"away with text", []string{"status", "away", "at lunch"}, "away", "at lunch"},
		{"busy with text", []string{"status", "busy", "in a meeting"}, "busy", "in a meeting"},
		{"available again", []string{"status", "available"}, "available", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			since := time.Now()
			if r := alice.cli(tc.args...); r.code != 0 {
				t.Fatalf("%v", r)
			}
			for _, o := range others {
				waitFor(t, seeTimeout, func() error {
					ev, ok := o.presenceSince(alice.id(), tc.state, since)
					if !ok {
						last, _ := o.presence(alice.id())
						return fmt.Errorf("%s has no presence event with alice %s; last: %s", o, tc.state, last.raw)
					}
					if ev.StatusText != tc.statusText || ev.Change != "status" || ev.Peer.Name != "alice" {
						return fmt.Errorf("%s: presence event %s, want status_text %q, change status, name alice", o, ev.raw, tc.statusText)
					}
					return nil
				})
				waitFor(t, seeTimeout, func() error {
					ps, err := o.peers()
					if err != nil {
						return err
					}
					es := entries(ps, alice.id())
					if len(es) != 1 || es[0].State != tc.state || es[0].StatusText != tc.statusText {
						return fmt.Errorf("%s lists alice as %+v, want one entry %s %q", o, es, tc.state, tc.statusText)
					}
					return nil
				})
			}
		})
	}
}

func TestSendThroughControlSocket(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	for _, tc := range []struct {
		name  string
		to    *node
		args  []string
		stdin string
		want  string
	}{
		{"by name, words joined", bob, []string{"send", "bob", "hello", "there"}, "", "hello there"},
		{"by id", carol, []string{"send", carol.id(), "to you by id"}, "", "to you by id"},
		{"from stdin", bob, []string{"send", "bob", "-"}, "line one\nline two\n", "line one\nline two"},
		{"unicode", carol, []string{"send", "carol", "grüße, 你好 👋"}, "", "grüße, 你好 👋"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLIInput(t, alice.host, tc.stdin, append([]string{"--data-dir", alice.dataDir}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("%v", r)
			}
			m := waitMessage(t, tc.to, alice.id(), tc.want)
			if m.From.Name != "alice" {
				t.Errorf("message from.name = %q, want alice", m.From.Name)
			}
			if _, err := time.Parse(time.RFC3339, m.Time); err != nil {
				t.Errorf("message time %q: %v", m.Time, err)
			}
		})
	}
	// Nobody got what was not sent to them.
	for _, m := range alice.received() {
		t.Errorf("alice received %s", m.raw)
	}
}

func TestSendOneShot(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	// h1 runs no node: the commands there are one-shots.
	oneShot := lab.Hosts[0]
	nodes := startNodes(t, lab.Hosts[1:], "bob", "carol")
	bob, carol := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	dir := newDataDir(t)
	base := []string{"--name", "olive", "--data-dir", dir}
	r := runCLI(t, oneShot, append(base, "id", "--json")...)
	var olive peerRef
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &olive) != nil || len(olive.ID) != 52 {
		t.Fatalf("one-shot id --json: %v", r)
	}

	for _, tc := range []struct {
		name string
		to   *node
		args []string
		text string
	}{
		{"discovered by mdns", bob, nil, "one-shot over mdns"},
		{"discovered by join", carol, []string{"--no-mdns", "--join", carol.gossipAddr()}, "one-shot over join"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append([]string{}, base...), tc.args...), "send", tc.to.name, tc.text)
			if r := runCLI(t, oneShot, args...); r.code != 0 {
				t.Fatalf("%v", r)
			}
			m := waitMessage(t, tc.to, olive.ID, tc.text)
			if m.From.Name != "olive" {
				t.Errorf("message from.name = %q, want olive", m.From.Name)
			}
		})
	}

	t.Run("peers by one-shot discovery", func(t *testing.T) {
		ps, err := parsePeers(runCLI(t, oneShot, append(base, "peers", "--json")...))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if es := entries(ps, n.id()); len(es) != 1 || es[0].State != "available" {
				t.Errorf("one-shot peers lists %s as %+v, want one available entry", n, es)
			}
		}
	})
}

func TestUnknownAndAmbiguousRecipients(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 4)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "dup", "dup")
	alice, dup1, dup2 := nodes[0], nodes[2], nodes[3]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	t.Run("unknown", func(t *testing.T) {
		r := alice.cli("send", "nobody", "hello?")
		if r.code != 1 {
			t.Fatalf("want exit 1: %v", r)
		}
		if !strings.Contains(r.stderr, "nobody") {
			t.Errorf("stderr does not name the unknown recipient: %v", r)
		}
		for _, name := range []string{"bob", "dup"} {
			if !strings.Contains(r.stderr, name) {
				t.Errorf("stderr does not list online peer %s: %v", name, r)
			}
		}
	})
	// Two nodes share a name. Trust on first use pins the first one alice
	// verified: "dup" means that one, and the other is listed with a
	// warning. Once alice trusts both, "dup" is ambiguous.
	var pinned, other *node
	t.Run("shared name goes to the pinned one", func(t *testing.T) {
		var ps []peer
		waitFor(t, seeTimeout, func() error {
			var err error
			if ps, err = alice.peers(); err != nil {
				return err
			}
			t1, t2 := entries(ps, dup1.id()), entries(ps, dup2.id())
			if len(t1) != 1 || len(t2) != 1 || t1[0].Trusted == t2[0].Trusted {
				return fmt.Errorf("want exactly one dup trusted: %+v %+v", t1, t2)
			}
			return nil
		})
		pinned, other = dup1, dup2
		if !entries(ps, dup1.id())[0].Trusted {
			pinned, other = dup2, dup1
		}
		if e := entries(ps, other.id())[0]; e.Warning == "" {
			t.Errorf("the second dup is listed without a warning: %+v", e)
		}
		if r := alice.cli("send", "dup", "which one?"); r.code != 0 || !strings.Contains(r.stdout, pinned.id()[:7]) {
			t.Fatalf("send dup: want delivery to the pinned %s: %v", pinned, r)
		}
		waitMessage(t, pinned, alice.id(), "which one?")
	})
	t.Run("ambiguous once both are trusted", func(t *testing.T) {
		if r := alice.cli("trust", other.id()); r.code != 0 {
			t.Fatalf("%v", r)
		}
		r := alice.cli("send", "dup", "which one now?")
		if r.code != 1 {
			t.Fatalf("want exit 1: %v", r)
		}
		for _, d := range []*node{dup1, dup2} {
			if !strings.Contains(r.stderr, d.id()) {
				t.Errorf("stderr does not list %s's id %s: %v", d, d.id(), r)
			}
		}
	})
	t.Run("shared name resolved by id", func(t *testing.T) {
		if r := alice.cli("send", other.id(), "you, by id"); r.code != 0 {
			t.Fatalf("%v", r)
		}
		waitMessage(t, other, alice.id(), "you, by id")
	})
	// Nothing else was delivered: not the failed sends, not to bob.
	for _, n := range nodes[1:] {
		for _, m := range n.received() {
			if !(n == pinned && m.Text == "which one?") && !(n == other && m.Text == "you, by id") {
				t.Errorf("%s received %s", n, m.raw)
			}
		}
	}
}

func TestCleanLeaveVersusCrash(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	// SIGTERM: a clean exit, which the others show as left.
	if code := bob.Stop(); code != 0 {
		t.Errorf("bob exited %d on SIGTERM, want 0", code)
	}
	waitSees(t, seeTimeout, []*node{alice, carol}, []*node{bob}, "left")
	for _, o := range []*node{alice, carol} {
		if ev, _ := o.presence(bob.id()); ev.Change != "left" {
			t.Errorf("%s: %s, want change left", o, ev.raw)
		}
		waitFor(t, seeTimeout, func() error { return listsState(o, []*node{bob}, "left", false) })
	}

	// SIGKILL: a crash, which alice shows as offline once failure detection
	// has run.
	start := time.Now()
	carol.Kill()
	waitSees(t, offlineWithin, []*node{alice}, []*node{carol}, "offline")
	t.Logf("crash seen after %v", time.Since(start).Round(time.Millisecond))
	if ev, _ := alice.presence(carol.id()); ev.Change != "lost" {
		t.Errorf("alice: %s, want change lost", ev.raw)
	}
	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{carol}, "offline", false) })
	// And bob stays left: a later crash does not rewrite a clean leave.
	if err := listsState(alice, []*node{bob}, "left", false); err != nil {
		t.Error(err)
	}
}

func TestUnplugAndReplug(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	carol, rest := nodes[2], nodes[:2]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	if err := carol.host.Unplug(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitSees(t, offlineWithin, rest, []*node{carol}, "offline")
	t.Logf("unplugged carol seen offline after %v", time.Since(start).Round(time.Millisecond))
	waitSees(t, offlineWithin, []*node{carol}, rest, "offline")

	if err := carol.host.Replug(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitSees(t, healWithin, nodes, nodes, "available")
	t.Logf("replugged carol seen available after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		// One entry per id: the returning peer did not come back as a
		// second entry.
		waitFor(t, seeTimeout, func() error { return listsState(n, nodes, "available", true) })
	}
	// And messages flow both ways again.
	if r := rest[0].cli("send", "carol", "welcome back"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, carol, rest[0].id(), "welcome back")
	if r := carol.cli("send", "alice", "thanks"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, rest[0], carol.id(), "thanks")
}

func TestSplitAndHeal(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 4)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol", "dave")
	left, right := nodes[:2], nodes[2:]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	if err := lab.Partition(lab.Hosts[:2], lab.Hosts[2:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitSees(t, offlineWithin, left, right, "offline")
	waitSees(t, offlineWithin, right, left, "offline")
	t.Logf("both sides saw the other offline after %v", time.Since(start).Round(time.Millisecond))
	// Each side still sees its own half.
	if err := seesState(left, left, "available"); err != nil {
		t.Error(err)
	}
	if err := seesState(right, right, "available"); err != nil {
		t.Error(err)
	}

	if err := lab.Heal(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitSees(t, healWithin, nodes, nodes, "available")
	t.Logf("healed: all available again after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		if err := listsState(n, nodes, "available", true); err != nil {
			t.Error(err)
		}
	}
}

func TestLossyLAN(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	// Every host loses 10% of its packets each way: sends are acknowledged
	// all the same.
	for _, h := range lab.Hosts {
		if err := h.DropPercent(10); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		for _, pair := range [][2]*node{{alice, bob}, {bob, alice}} {
			from, to := pair[0], pair[1]
			text := fmt.Sprintf("lossy %d from %s", i, from.name)
			if r := from.cli("send", to.name, text); r.code != 0 {
				t.Fatalf("%v", r)
			}
			waitMessage(t, to, from.id(), text)
		}
	}
	for _, h := range lab.Hosts {
		if err := h.ClearDrop(); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever a lossy minute made them think, they agree again.
	waitSees(t, healWithin, nodes, nodes, "available")
}

func TestJoinWithoutMDNS(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 4)
	// h4 runs no node: it listens for mDNS, of which there must be none.
	mdns := listenMDNS(t, lab.Hosts[3])

	// A chain: bob joins alice, carol joins bob; gossip does the rest.
	noMDNS := []string{"--no-mdns"}
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", args: noMDNS})
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob", args: append(noMDNS, "--join", alice.gossipAddr())})
	carol := startNode(t, lab.Hosts[2], nodeOpts{name: "carol", args: append(noMDNS, "--join", bob.gossipAddr())})
	nodes := []*node{alice, bob, carol}

	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, n := range nodes {
		waitFor(t, seeTimeout, func() error { return listsState(n, nodes, "available", true) })
	}
	if r := carol.cli("send", "alice", "found you without mdns"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, alice, carol.id(), "found you without mdns")
	if got := mdns.count(); got > 0 {
		t.Errorf("%d mDNS packets with --no-mdns on every node; first from %s", got, mdns.firstFrom())
	}
}

// mdnsListener counts the mDNS packets a host sees.
type mdnsListener struct {
	mu    sync.Mutex // guards n and from
	n     int
	from  string
	conns []*net.UDPConn
}

func listenMDNS(t testing.TB, h *netlab.Host) *mdnsListener {
	t.Helper()
	l := &mdnsListener{}
	for _, g := range []string{"224.0.0.251:5353"} {
		c, err := h.ListenMulticastUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(g)))
		if err != nil {
			t.Fatalf("listen for mDNS on %s: %v", h, err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 9000)
			for {
				_, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				l.mu.Lock()
				if l.n == 0 {
					l.from = from.String()
				}
				l.n++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *mdnsListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *mdnsListener) firstFrom() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.from
}

func TestRestartedNodeTakenBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		stop func(*node)
	}{
		{"after clean exit", func(n *node) { n.Stop() }},
		{"after kill -9", func(n *node) { n.Kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := netlab.New(t, 3)
			nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
			alice, bob, carol := nodes[0], nodes[1], nodes[2]
			waitSees(t, seeTimeout, nodes, nodes, "available")

			tc.stop(bob)
			start := time.Now()
			bob2 := startNode(t, bob.host, nodeOpts{name: "bob", dataDir: bob.dataDir})
			if bob2.id() != bob.id() {
				t.Fatalf("restarted bob has id %s, was %s", bob2.id(), bob.id())
			}
			// The new process is in: it sees the others, they see it, and
			// they list it once.
			after := []*node{alice, bob2, carol}
			waitSees(t, seeTimeout, []*node{bob2}, after, "available")
			for _, o := range []*node{alice, carol} {
				waitFor(t, seeTimeout, func() error { return listsState(o, []*node{bob2}, "available", true) })
			}
			t.Logf("restarted bob taken back after %v", time.Since(start).Round(time.Millisecond))
			if r := alice.cli("send", "bob", "still you?"); r.code != 0 {
				t.Fatalf("%v", r)
			}
			waitMessage(t, bob2, alice.id(), "still you?")
		})
	}
}

func TestTwoNodesOneDataDir(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	for _, tc := range []struct {
		name   string
		host   *netlab.Host
		others []string // flags that keep the second node off the first one's ports
	}{
		{"same host", lab.Hosts[0], []string{"--port", "17481", "--gossip-port", "17480"}},
		{"other host, shared directory", lab.Hosts[1], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := startNode(t, lab.Hosts[0], nodeOpts{name: "first"})
			second := launchNode(t, tc.host, nodeOpts{name: "second", dataDir: first.dataDir, args: tc.others})
			code, err := second.waitExit(readyTimeout)
			if err != nil {
				t.Fatalf("second node on the same data dir: %v", err)
			}
			if code == 0 {
				t.Errorf("second node exited 0, want non-zero")
			}
			if evs := second.eventsOf("ready"); len(evs) > 0 {
				t.Errorf("second node said it was ready: %s", evs[0].raw)
			}
			log := strings.ToLower(second.stderr.String())
			if !containsAny(log, "already", "in use", "lock", "running") {
				t.Errorf("second node's error does not say the data dir is taken:\n%s", second.stderr.String())
			}
			// The first node is unharmed, its control socket too.
			if first.exited() {
				t.Fatalf("first node exited: %v", first.exitState())
			}
			r := first.cli("id", "--json")
			var got peerRef
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.ID != first.id() {
				t.Errorf("first node's control socket after the second start: %v", r)
			}
		})
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
