package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	lab := netlab.New(t, 3)
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", args: []string{"--no-mdns"}})
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
				ID string `json:"id"`
			} `json:"peers"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		if len(f.Seeds) != 1 || f.Seeds[0] != alice.gossipAddr() {
			return fmt.Errorf("seeds %v, want [%s]", f.Seeds, alice.gossipAddr())
		}
		for _, p := range f.Peers {
			if p.ID == bob.id() {
				return nil
			}
		}
		return fmt.Errorf("bob not in carol's peers.json:\n%s", b)
	})

	carol.Kill()
	alice.Stop()
	start := time.Now()
	carol2 := startNode(t, carol.host, nodeOpts{name: "carol", dataDir: carol.dataDir, args: []string{"--no-mdns"}})
	waitSees(t, 10*time.Second, []*node{carol2}, []*node{bob}, "available")
	waitSees(t, 10*time.Second, []*node{bob}, []*node{carol2}, "available")
	t.Logf("restarted carol, without --join or mDNS and with its seed gone, found bob after %v", time.Since(start).Round(time.Millisecond))
}
