//go:build linux

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// officeSize is TestOffice's LAN unless LANCHAT_OFFICE_SIZE says
// otherwise (the 50: LANCHAT_OFFICE_SIZE=50); two fifths of it
// are stopped for good (the 20 of 50).
const (
	officeSize = 20
	// officeWave nodes start at once, the next wave once all list all.
	officeWave = 10
)

func officeSizeFromEnv(t *testing.T) int {
	t.Helper()
	s := os.Getenv("LANCHAT_OFFICE_SIZE")
	if s == "" {
		return officeSize
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 5 || n > netlab.MaxHosts {
		t.Fatalf("LANCHAT_OFFICE_SIZE: bad size %q", s)
	}
	return n
}

// TestOffice checks issue 11's office, with real binaries on namespace
// hosts (netlab raises the kernel's shared neighbour table for them, or
// hosts past the 33rd hear no one):
//
//   - all list all;
//   - a split in two halves is seen by both and heals within 30 s;
//   - two fifths killed for good: the others list them offline, then,
//     over 20 s, the reconnect dials aimed at the dead (TCP SYNs counted
//     in the dead hosts' namespaces, which stay up with nothing listening)
//     stay at most about one a second per surviving node, and no survivor
//     sees another change presence (nobody flaps);
//   - meanwhile a new node (another identity) starts on a dead node's
//     host, with its address and ports: every survivor lists it as itself,
//     retires the old peer's address when its next dial meets the new key,
//     and keeps the old peer offline.
//
// The issue asks for 50 hosts (LANCHAT_OFFICE_SIZE=50). Past about 40
// nodes a newly started node used to be kept offline for minutes by a
// storm of handshakes from the 49 others; mesh now spreads and backs off
// what it aims at one peer (mesh/doc.go, "Handshakes aimed at one
// peer"), and 50 passes on a two-core machine when the machine is not
// loaded by much else, in 2–3 minutes (BENCHMARKS.md; 90 s on an idle
// machine after the idle work of December 2026). CI runs 20,
// about 70 s under -race, and 50 is run by hand. The race detector is not
// in the nodes: they are built without it.
//
// The nodes start in waves of 10, as an office's machines come up over a
// morning: 50 started in the same second on two cores starved one
// another's probes, with hundreds of false losses in the first 40 s.
//
// It is not parallel: tens of nodes beside other tests' nodes would test
// the machine's load, not the timers. Serial top-level tests run before
// the parallel ones resume, so it runs alone. The nodes log at info
// level: debug logging of every node costs CPU the timers need.
func TestOffice(t *testing.T) {
	size := officeSizeFromEnv(t)
	gone := 2 * size / 5
	began := time.Now()
	lab := netlab.New(t, size)
	hosts := lab.Hosts
	nodes, listed := startWaves(t, hosts, "o", officeWave)
	// Registered after the nodes' own cleanups, so it runs before them:
	// all stopped at once rather than one clean exit after another.
	t.Cleanup(func() { stopAll(nodes) })
	slices.Sort(listed)
	t.Logf("%d nodes list all %d %v after the first started; start → listed by all: median %v, worst %v",
		size, size, time.Since(began).Round(time.Millisecond),
		listed[len(listed)/2].Round(time.Millisecond), listed[len(listed)-1].Round(time.Millisecond))

	// A split in halves: each half lists the other offline, then, healed,
	// all list all again within the 30 s.
	left, right := nodes[:size/2], nodes[size/2:]
	if err := lab.Partition(hosts[:size/2], hosts[size/2:]); err != nil {
		t.Fatal(err)
	}
	split := time.Now()
	waitSees(t, 2*offlineWithin, left, right, "offline")
	waitSees(t, 2*offlineWithin, right, left, "offline")
	t.Logf("split %d/%d seen by both halves after %v", len(left), len(right), time.Since(split).Round(time.Millisecond))
	if err := seesState(left, left, "available"); err != nil {
		t.Errorf("within the left half: %v", err)
	}
	if err := seesState(right, right, "available"); err != nil {
		t.Errorf("within the right half: %v", err)
	}
	if err := lab.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	waitSees(t, healWithin, nodes, nodes, "available")
	t.Logf("healed: all list all %v after the heal", time.Since(healed).Round(time.Millisecond))

	// Two fifths stopped for good: killed, their hosts left up with nothing
	// listening, so every dial at them is a SYN answered by a RST.
	dead, alive := nodes[:gone], nodes[gone:]
	killed := time.Now()
	for _, n := range dead {
		n.Kill()
	}
	waitSees(t, 2*offlineWithin, alive, dead, "offline")
	t.Logf("%d killed, seen offline by the %d others after %v", gone, len(alive), time.Since(killed).Round(time.Millisecond))

	// Another identity takes the first dead node's address and ports.
	usurper := startNode(t, dead[0].host, nodeOpts{name: "usurper", logLevel: "info"})

	// Suspicion's gossip and the usurper's join die down before counting.
	time.Sleep(2 * time.Second)
	counted := dead[1:] // the usurper's host takes dials meant for the usurper
	for _, n := range counted {
		if err := n.host.CountPackets(); err != nil {
			t.Fatal(err)
		}
	}
	from := time.Now()
	const window = 20 * time.Second
	time.Sleep(window)
	var syns uint64
	for _, n := range counted {
		c, err := n.host.Counted()
		if err != nil {
			t.Fatal(err)
		}
		syns += c.SYNs
	}
	to := time.Now()
	perNode := float64(syns) / to.Sub(from).Seconds() / float64(len(alive))
	t.Logf("reconnect dials at %d lost peers: %.2f a second per surviving node (%d SYNs in %v)",
		len(counted), perNode, syns, to.Sub(from).Round(time.Millisecond))
	// The node-wide cap is one a second; a slot of the window's edges and
	// a loaded machine's late counter reading are allowed for.
	if perNode > 1.2 {
		t.Errorf("%.2f reconnect dials a second per node at %d lost peers, want at most about 1 (the node's cap)", perNode, len(counted))
	}
	if syns == 0 {
		t.Errorf("no dial at all at the %d lost peers in %v: nothing would heal a split", len(counted), window)
	}
	if flaps := presenceChanges(alive, from, to); len(flaps) > 0 {
		t.Errorf("survivors changed presence in each other's eyes during the window:\n%s", strings.Join(flaps, "\n"))
	}

	// The usurper is listed as itself; each survivor's next dial of the
	// old peer's address (due within its backoff's 20 s cap, or later when
	// the other lost peers queue at one dial a second) meets its key and
	// retires the address, and the old peer stays offline.
	waitSees(t, seeTimeout, alive, []*node{usurper}, "available")
	waitFor(t, 45*time.Second, func() error {
		var missing []string
		for _, n := range alive {
			if !strings.Contains(n.stderr.String(), "now holds another identity") {
				missing = append(missing, n.String())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d survivors have not retired the old peer's address: %s", len(missing), strings.Join(missing, " "))
		}
		return nil
	})
	if err := seesState(alive, dead, "offline"); err != nil {
		t.Errorf("after the usurper's start: %v", err)
	}
	t.Logf("whole test %v", time.Since(began).Round(time.Millisecond))
}

// presenceChanges lists the presence events that observers printed between
// from and to about one another.
func presenceChanges(observers []*node, from, to time.Time) []string {
	ids := make(map[string]bool, len(observers))
	for _, o := range observers {
		ids[o.id()] = true
	}
	var out []string
	for _, o := range observers {
		for _, ev := range o.eventsOf("presence") {
			if ids[ev.Peer.ID] && !ev.at.Before(from) && !ev.at.After(to) {
				out = append(out, fmt.Sprintf("  %s %s: %s", ev.at.Format("15:04:05.000"), o, ev.raw))
			}
		}
	}
	return out
}

// stopAll sends SIGTERM to every node still running, then waits for each;
// a node's own cleanup then finds it exited (or kills it).
func stopAll(nodes []*node) {
	for _, n := range nodes {
		if !n.exited() {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range nodes {
		_, _ = n.waitExit(stopTimeout)
	}
}

// startWaves starts a node (info logging) on each host, wave at a time:
// each wave is launched together, and the next only once every node
// started so far lists every other available. It returns the nodes and,
// for each, start → listed by all: from its start (or, for an observer
// started after it, that observer's start) to the last observer's
// presence event putting it available.
func startWaves(tb testing.TB, hosts []*netlab.Host, prefix string, wave int) ([]*node, []time.Duration) {
	tb.Helper()
	var nodes []*node
	var listed []time.Duration
	for first := 0; first < len(hosts); first += wave {
		var batch []*node
		for i := first; i < min(first+wave, len(hosts)); i++ {
			batch = append(batch, launchNode(tb, hosts[i], nodeOpts{name: prefix + strconv.Itoa(i+1), logLevel: "info"}))
		}
		for _, n := range batch {
			if err := n.waitReady(readyTimeout); err != nil {
				tb.Fatal(err)
			}
		}
		nodes = append(nodes, batch...)
		waitSees(tb, 3*seeTimeout, nodes, nodes, "available")
		for _, s := range batch {
			var worst time.Duration
			for _, o := range nodes {
				if o == s {
					continue
				}
				since := s.started
				if o.started.After(since) {
					since = o.started
				}
				ev, ok := o.presenceSince(s.id(), "available", since)
				if !ok {
					tb.Fatalf("%s lists %s available, but printed no such event after %v", o, s, since)
				}
				worst = max(worst, ev.at.Sub(since))
			}
			listed = append(listed, worst)
		}
	}
	return nodes, listed
}
