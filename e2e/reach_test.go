package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// reachOf is what `peers --json` says of one peer's reachability.
type reachOf struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Reachable bool   `json:"reachable"`
	SeenBy    int    `json:"seen_by"`
}

func reachability(n *node, of *node) (reachOf, error) {
	r, err := tryCLI(n.host, lanchatBin(n.t), "", "--data-dir", n.dataDir, "peers", "--json")
	if err != nil {
		return reachOf{}, err
	}
	if r.code != 0 {
		return reachOf{}, fmt.Errorf("%v", r)
	}
	var ps []reachOf
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
		return reachOf{}, err
	}
	for _, p := range ps {
		if p.ID == of.id() {
			return p, nil
		}
	}
	return reachOf{}, fmt.Errorf("%s does not list %s", n, of)
}

// TestUnreachableFromHere: with traffic dropped between exactly two of
// three hosts, the two still list each other online (the third vouches
// for each), as "unreachable from here, seen by 1 other" — in peers,
// --json and the event stream — and the third lists both as reachable.
// When the link heals they are reachable again.
func TestUnreachableFromHere(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, o := range nodes {
		waitFor(t, seeTimeout, func() error { return listsState(o, others(nodes, o), "available", true) })
	}

	if err := alice.host.BlockFrom(bob.host.Addr); err != nil {
		t.Fatal(err)
	}
	if err := bob.host.BlockFrom(alice.host.Addr); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	for _, pair := range [][2]*node{{alice, bob}, {bob, alice}} {
		o, p := pair[0], pair[1]
		waitFor(t, 30*time.Second, func() error {
			r, err := reachability(o, p)
			if err != nil {
				return err
			}
			if r.State != "available" || r.Reachable || r.SeenBy != 1 {
				return fmt.Errorf("%s lists %s as %+v, want available, unreachable, seen by 1", o, p, r)
			}
			return nil
		})
	}
	t.Logf("both sides showed each other unreachable from here %v after the cut", time.Since(cut).Round(time.Millisecond))
	for _, p := range []*node{alice, bob} {
		r, err := reachability(carol, p)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != "available" || !r.Reachable {
			t.Errorf("carol lists %s as %+v, want available and reachable", p, r)
		}
	}
	if out := alice.cli("peers"); !strings.Contains(out.stdout, "unreachable from here, seen by 1 other") {
		t.Errorf("alice's peers does not say bob is unreachable from here:\n%s", out.stdout)
	}
	if out := alice.cli("doctor", "bob"); !strings.Contains(out.stdout, "peer-seen-by-others") {
		t.Errorf("alice's doctor bob does not say others see bob:\n%s", out.stdout)
	}
	if !hasPresence(alice, bob, "unreachable") {
		t.Errorf("alice printed no unreachable event for bob")
	}
	// Not offline: no lost event for each other since the cut.
	if ev, ok := alice.presenceSince(bob.id(), "offline", cut); ok {
		t.Errorf("alice showed bob offline: %s", ev.raw)
	}

	if err := alice.host.Unblock(); err != nil {
		t.Fatal(err)
	}
	if err := bob.host.Unblock(); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*node{{alice, bob}, {bob, alice}} {
		o, p := pair[0], pair[1]
		waitFor(t, 30*time.Second, func() error {
			r, err := reachability(o, p)
			if err != nil {
				return err
			}
			if r.State != "available" || !r.Reachable {
				return fmt.Errorf("%s lists %s as %+v after the heal, want reachable", o, p, r)
			}
			return nil
		})
	}
	if !hasPresence(alice, bob, "reachable") {
		t.Errorf("alice printed no reachable event for bob")
	}
}

func others(all []*node, not *node) []*node {
	var out []*node
	for _, n := range all {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

func hasPresence(n *node, of *node, change string) bool {
	for _, ev := range n.eventsOf("presence") {
		if ev.Peer.ID == of.id() && ev.Change == change {
			return true
		}
	}
	return false
}
