//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// keyFile writes a new office key with the real binary, as a person does.
func keyFile(t *testing.T, h *netlab.Host) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "network.key")
	if r := runCLI(t, h, "keygen", "-o", p); r.code != 0 {
		t.Fatalf("keygen:\n%s", r)
	}
	return p
}

// A closed network on a shared LAN: the two nodes with the office key see
// each other and talk; a guest with no key and a node with another key see
// neither of them, are seen by neither, and cannot send to them — not by
// gossip, not by a one-shot command. A one-shot command given the key
// finds the network.
func TestClosedNetworkOnASharedLAN(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 4)
	office := keyFile(t, lab.Hosts[0])
	other := keyFile(t, lab.Hosts[0])
	keyed := func(path string) []string { return []string{"--network-key-file", path} }
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", args: keyed(office)})
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob", args: keyed(office)})
	guest := startNode(t, lab.Hosts[2], nodeOpts{name: "guest", args: []string{"--join", alice.gossipAddr()}})
	mallory := startNode(t, lab.Hosts[3], nodeOpts{name: "mallory", args: append(keyed(other), "--join", alice.gossipAddr())})

	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{bob}, "available", true) })
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })
	if r := alice.cli("send", "bob", "closed network"); r.code != 0 {
		t.Fatalf("alice to bob:\n%s", r)
	}
	waitMessage(t, bob, alice.id(), "closed network")

	time.Sleep(3 * time.Second) // mDNS and several gossip rounds: time to leak, if anything leaks
	for _, in := range []*node{alice, bob} {
		ps, err := in.peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []*node{guest, mallory} {
			if len(entries(ps, out.id())) != 0 {
				t.Errorf("%s lists %s, which lacks the key", in, out)
			}
		}
	}
	for _, out := range []*node{guest, mallory} {
		ps, err := out.peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*node{alice, bob} {
			if len(entries(ps, in.id())) != 0 {
				t.Errorf("%s lists %s of the closed network", out, in)
			}
		}
		if r := out.cli("send", alice.id(), "let me in"); r.code == 0 {
			t.Errorf("%s sent to alice:\n%s", out, r)
		}
	}
	// A one-shot command (no node) with the key finds the network; one
	// without it does not.
	dir := newDataDir(t)
	r := runCLI(t, lab.Hosts[2], "--data-dir", dir, "--network-key-file", office, "peers", "--json", "--wait", "5s")
	if r.code != 0 || !strings.Contains(r.stdout, alice.id()) {
		t.Fatalf("one-shot with the key:\n%s", r)
	}
	r = runCLI(t, lab.Hosts[2], "--data-dir", newDataDir(t), "peers", "--json", "--wait", "2s")
	if strings.Contains(r.stdout, alice.id()) || strings.Contains(r.stdout, bob.id()) {
		t.Fatalf("one-shot without the key lists the closed network:\n%s", r)
	}
	// A key file others can read is refused, with the fix.
	loose := filepath.Join(t.TempDir(), "loose.key")
	b, _ := os.ReadFile(office)
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, lab.Hosts[3], "--data-dir", newDataDir(t), "--network-key-file", loose, "peers"); r.code == 0 || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("a 0644 key file:\n%s", r)
	}
}
