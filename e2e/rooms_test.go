package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/internal/netlab"
	lanchatnode "lanchat/node"
	"lanchat/node/api"
)

// roomHistory reads a node's whole history of room through its control
// socket (a Unix socket in its data directory, which the test process
// reaches whatever the network namespace), as lines to compare.
func roomHistory(n *node, room string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := api.Connect(ctx, lanchatnode.ControlSocket(n.dataDir))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	es, err := c.History(ctx, api.HistoryQuery{Peer: room, Limit: api.MaxHistoryLimit})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s %.8s %s %s", e.ID, e.From.ID, e.Kind, e.Text)
	}
	return out, nil
}

// sameRoom waits until every node holds the same history of room, with
// want entries, each once.
func sameRoom(t *testing.T, timeout time.Duration, nodes []*node, room string, want int) []string {
	t.Helper()
	var first []string
	waitFor(t, timeout, func() error {
		var err error
		if first, err = roomHistory(nodes[0], room); err != nil {
			return err
		}
		if len(first) != want {
			return fmt.Errorf("%s holds %d entries of %s, want %d", nodes[0], len(first), room, want)
		}
		for _, n := range nodes[1:] {
			got, err := roomHistory(n, room)
			if err != nil {
				return err
			}
			if !slices.Equal(got, first) {
				return fmt.Errorf("%s and %s differ (%d and %d entries): %s", nodes[0], n, len(first), len(got), firstDiff(first, got))
			}
		}
		return nil
	})
	seen := map[string]bool{}
	for _, line := range first {
		if seen[line] {
			t.Fatalf("%q held twice", line)
		}
		seen[line] = true
	}
	return first
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %q vs %q", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}

// say sends text to room from n through its running node.
func say(t *testing.T, n *node, room, text string) {
	t.Helper()
	if r := n.cli("send", room, text); r.code != 0 {
		t.Fatalf("%s: send %s: %v", n, room, r)
	}
}

// TestRoomHistoryConverges is the scenario: a room's history is
// the same on every member at the end, in the same order, with nothing
// missing and nothing twice, after a member was unplugged, another
// stopped, the LAN split in two and healed while both sides talked, an
// author went away before the others returned, and a sixth node joined
// late.
func TestRoomHistoryConverges(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 6)
	nodes := startNodes(t, lab.Hosts[:5], "ann", "ben", "cat", "dan", "eve")
	ann, ben, cat, dan, eve := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	entries := 5 // everyone's join of #general
	sameRoom(t, seeTimeout, nodes, "#general", entries)

	// dan is unplugged and eve stopped while the others talk.
	if err := dan.host.Unplug(); err != nil {
		t.Fatal(err)
	}
	eve.Stop()
	waitSees(t, offlineWithin, nodes[:3], []*node{dan}, "offline")
	for i, n := range []*node{ann, ben, cat, ann, ben} {
		say(t, n, "#general", fmt.Sprintf("%s while dan and eve are away %d", n.name, i))
		entries++
	}
	if err := dan.host.Replug(); err != nil {
		t.Fatal(err)
	}
	eve = restart(t, eve)
	nodes[4] = eve
	waitSees(t, healWithin, nodes, nodes, "available")

	// Split: ann, ben, cat | dan, eve; both sides talk.
	if err := lab.Partition(lab.Hosts[:3], lab.Hosts[3:5]); err != nil {
		t.Fatal(err)
	}
	waitSees(t, offlineWithin, nodes[:3], nodes[3:5], "offline")
	waitSees(t, offlineWithin, nodes[3:5], nodes[:3], "offline")
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				if r := n.cli("send", "#general", fmt.Sprintf("%s in the split %d", n.name, i)); r.code != 0 {
					t.Errorf("%s: %v", n, r)
				}
			}
		}()
	}
	wg.Wait()
	entries += 4 * len(nodes)
	// cat wrote things only its side has, then goes home before the heal.
	sameRoom(t, seeTimeout, nodes[:3], "#general", entries-8)
	cat.Stop()
	if err := lab.Heal(); err != nil {
		t.Fatal(err)
	}
	present := []*node{ann, ben, dan, eve}
	waitSees(t, healWithin, present, present, "available")
	sameRoom(t, healWithin, present, "#general", entries)

	// A sixth node joins late and gets the whole history, cat's too.
	fay := startNode(t, lab.Hosts[5], nodeOpts{name: "fay"})
	entries++ // fay's join
	all := []*node{ann, ben, dan, eve, fay}
	waitSees(t, seeTimeout, all, all, "available")
	say(t, fay, "#general", "hello, I am new")
	entries++
	sameRoom(t, healWithin, all, "#general", entries)

	// cat returns and catches up on what it missed.
	cat = restart(t, cat)
	all = append(all, cat)
	waitSees(t, seeTimeout, all, all, "available")
	hist := sameRoom(t, healWithin, all, "#general", entries)
	t.Logf("%d entries in #general, identical on all %d nodes", len(hist), len(all))
	for _, line := range hist {
		if strings.Contains(line, "cat in the split") {
			return
		}
	}
	t.Fatal("cat's messages from the split are missing")
}
