package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// TestPeersRememberedAcrossRestart: on a LAN without multicast (mDNS off),
// a node killed and restarted without --join finds the network again, at
// the last address of a peer it had verified, although its only seed is
// gone too.
func TestPeersRememberedAcrossRestart(t *testing.T) {
	t.Parallel()
	peersRememberedAcrossRestart(t, netlab.New(t, 3), "", 10*time.Second)
}

// On an IPv6-only LAN without multicast, --join takes an IPv6 seed, and
// a node restarted without --join finds the network again at the IPv6
// address of a peer it had verified, its seed gone.
func TestPeersRememberedAcrossRestartIPv6(t *testing.T) {
	t.Parallel()
	peersRememberedAcrossRestart(t, netlab.NewWith(t, 3, netlab.Options{IPv6: true, NoIPv4: true}), "[fd99::", 15*time.Second)
}

// peersRememberedAcrossRestart runs the test on lab; addrPrefix, if set,
// is how alice's gossip address and bob's remembered one must begin, and
// the restarted carol and bob must see each other within found.
func peersRememberedAcrossRestart(t *testing.T, lab *netlab.Lab, addrPrefix string, found time.Duration) {
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", args: []string{"--no-mdns"}})
	if !strings.HasPrefix(alice.gossipAddr(), addrPrefix) {
		t.Fatalf("alice's gossip address is %s, want %s…", alice.gossipAddr(), addrPrefix)
	}
	seed := []string{"--no-mdns", "--join", alice.gossipAddr()}
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob", args: seed})
	carol := startNode(t, lab.Hosts[2], nodeOpts{name: "carol", args: seed})
	all := []*node{alice, bob, carol}
	waitSees(t, seeTimeout, all, all, "available")
	waitFor(t, seeTimeout, func() error { return listsState(carol, []*node{bob}, "available", true) })

	// What a user finds in the data directory: the seed, and bob.
	waitFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(carol.dataDir, "peers.json"))
		if err != nil {
			return err
		}
		var f struct {
			Seeds []string `json:"seeds"`
			Peers []struct {
				ID     string `json:"id"`
				Gossip string `json:"gossip"`
			} `json:"peers"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		if len(f.Seeds) != 1 || f.Seeds[0] != alice.gossipAddr() {
			return fmt.Errorf("seeds %v, want [%s]", f.Seeds, alice.gossipAddr())
		}
		for _, p := range f.Peers {
			if p.ID == bob.id() && strings.HasPrefix(p.Gossip, addrPrefix) {
				return nil
			}
		}
		return fmt.Errorf("bob (at %s…) not in carol's peers.json:\n%s", addrPrefix, b)
	})

	carol.Kill()
	alice.Stop()
	start := time.Now()
	carol2 := startNode(t, carol.host, nodeOpts{name: "carol", dataDir: carol.dataDir, args: []string{"--no-mdns"}})
	waitSees(t, found, []*node{carol2}, []*node{bob}, "available")
	waitSees(t, found, []*node{bob}, []*node{carol2}, "available")
	t.Logf("restarted carol, without --join or mDNS and with its seed gone, found bob after %v", time.Since(start).Round(time.Millisecond))
}
