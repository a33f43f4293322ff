package node

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lanchat/internal/fsutil"
	"lanchat/mesh"
	"lanchat/node/api"
)

// restartable runs a node on dir, as a restart would: same data
// directory, new process state.
func restartable(t *testing.T, dir, name string, join ...string) *running {
	t.Helper()
	return startNode(t, Config{DataDir: dir, Name: name, Join: join})
}

func listsOnline(r *running, id string) bool {
	for _, p := range r.peers() {
		if p.ID == id && p.Online() && p.Verified {
			return true
		}
	}
	return false
}

// TestJoinSeedIsRemembered: a node given --join, restarted without it,
// finds the network again (no multicast: every test node runs --no-mdns).
func TestJoinSeedIsRemembered(t *testing.T) {
	a := start(t, "alice")
	dir := t.TempDir()
	b := restartable(t, dir, "bob", a.gossip())
	waitFor(t, "bob lists alice", 10*time.Second, func() bool { return listsOnline(b, a.n.ID()) })
	b.stop()
	f, err := loadPeers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Seeds, []string{a.gossip()}) {
		t.Fatalf("seeds remembered %v, want [%s]", f.Seeds, a.gossip())
	}
	b = restartable(t, dir, "bob")
	waitFor(t, "bob, restarted without --join, lists alice again", 10*time.Second, func() bool { return listsOnline(b, a.n.ID()) })
}

// TestKnownPeerAddressIsRemembered: the seed is gone, but a peer met
// through it is found again at its last verified address.
func TestKnownPeerAddressIsRemembered(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	dir := t.TempDir()
	c := restartable(t, dir, "carol", a.gossip())
	waitFor(t, "carol lists bob", 10*time.Second, func() bool { return listsOnline(c, b.n.ID()) })
	waitFor(t, "bob's address in carol's peers file", 10*time.Second, func() bool {
		f, _ := loadPeers(dir)
		return slices.ContainsFunc(f.Peers, func(k mesh.KnownAddr) bool { return k.ID == b.n.ID() })
	})
	c.stop()
	a.stop() // the seed is gone for good
	c = restartable(t, dir, "carol")
	waitFor(t, "carol, restarted, lists bob again", 10*time.Second, func() bool { return listsOnline(c, b.n.ID()) })
}

// TestKnownAddressOfAnotherIdentityIsRetired: an address remembered for a
// peer but now held by another key is not joined, and is forgotten.
func TestKnownAddressOfAnotherIdentityIsRetired(t *testing.T) {
	a := start(t, "alice")
	ga := netip.MustParseAddrPort(a.gossip())
	other, err := mesh.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := savePeers(dir, peersFile{Peers: []mesh.KnownAddr{{
		ID: other.ID, Gossip: ga, TLS: netip.AddrPortFrom(ga.Addr(), uint16(a.info().Port)), Seen: time.Now(),
	}}}); err != nil {
		t.Fatal(err)
	}
	b := restartable(t, dir, "bob")
	waitFor(t, "the other identity's address forgotten", 10*time.Second, func() bool {
		return len(b.n.mesh.KnownAddrs()) == 0
	})
	time.Sleep(time.Second)
	if ps := b.peers(); len(ps) != 0 {
		t.Fatalf("bob joined through an address that is not its peer's: %v", ps)
	}
	b.stop()
	if f, _ := loadPeers(dir); len(f.Peers) != 0 {
		t.Fatalf("peers file still names the retired address: %v", f.Peers)
	}
}

func TestPeersFileBounds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, PeersFile)
	if err := os.WriteFile(path, []byte(strings.Repeat(" ", maxPeersFile+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPeers(dir); !errors.Is(err, fsutil.ErrTooLarge) {
		t.Fatalf("oversized peers file: err %v, want ErrTooLarge", err)
	}
	os.Remove(path)
	target := filepath.Join(dir, "elsewhere.json")
	os.WriteFile(target, []byte(`{"seeds":["10.0.0.1:7480"]}`), 0o600)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPeers(dir); !errors.Is(err, fsutil.ErrSymlink) {
		t.Fatalf("peers file through a link: err %v, want ErrSymlink", err)
	}
	os.Remove(path)
	id, _ := mesh.LoadOrCreateIdentity(t.TempDir())
	good := mesh.KnownAddr{ID: id.ID, Gossip: netip.MustParseAddrPort("10.0.0.2:7480"), TLS: netip.MustParseAddrPort("10.0.0.2:7481"), Seen: time.Now()}
	elsewhere := good
	elsewhere.TLS = netip.MustParseAddrPort("10.0.0.3:7481") // the gossip and TLS addresses of one peer differ
	noID := good
	noID.ID = "x"
	if err := savePeers(dir, peersFile{
		Seeds: []string{"10.0.0.1:7480", "no port", "10.0.0.1:7480"},
		Peers: []mesh.KnownAddr{good, elsewhere, noID},
	}); err != nil {
		t.Fatal(err)
	}
	f, err := loadPeers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Seeds, []string{"10.0.0.1:7480"}) || len(f.Peers) != 1 || f.Peers[0].Gossip != good.Gossip {
		t.Fatalf("loaded %+v, want the one good seed and the one good peer", f)
	}
}

// TestOneShotUsesRememberedPeers: with no node running and no --join, a
// one-shot command asks the peers the data directory's last node knew.
func TestOneShotUsesRememberedPeers(t *testing.T) {
	a := start(t, "alice")
	dir := t.TempDir()
	b := restartable(t, dir, "bob", a.gossip())
	waitFor(t, "bob lists alice", 10*time.Second, func() bool { return listsOnline(b, a.n.ID()) })
	b.stop()
	o, err := NewOneShot(Config{DataDir: dir, Name: "bob", NoMDNS: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	o.Wait = 5 * time.Second
	ps, err := o.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ps, func(p api.Peer) bool { return p.ID == a.n.ID() && p.Online() && p.Reachable }) {
		t.Fatalf("one-shot without --join lists %+v, want alice online", ps)
	}
}
