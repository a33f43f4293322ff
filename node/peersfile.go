package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"time"

	"lanchat/internal/fsutil"
	"lanchat/mesh"
)

// PeersFile is where a node remembers, across restarts, the --join seeds
// it was last given and the last verified address of each peer it knew,
// so that a network multicast does not reach is found again after a
// reboot (issue 11). It holds no secret, and nothing a stranger said: only
// addresses a handshake proved (mesh.KnownAddr).
const PeersFile = "peers.json"

// maxPeersFile bounds peers.json: MaxKnown peers of about 200 bytes and
// as many seeds fit in a quarter of it; a larger file is refused unread.
const maxPeersFile = 64 << 10

// maxSeeds caps the seeds remembered (the user's --join list).
const maxSeeds = mesh.MaxKnown

// peersSaveDelay gathers the verifications of a start into one write;
// peersRefresh rewrites the file while nothing changes, so the times seen
// of live peers stay near the truth (the reconnect horizon counts from them).
const (
	peersSaveDelay = time.Second
	peersRefresh   = 10 * time.Minute
)

type peersFile struct {
	Seeds []string         `json:"seeds"`
	Peers []mesh.KnownAddr `json:"peers"`
}

// loadPeers reads the peers file. Entries that make no sense are dropped
// one by one (the rest still find the network); a file that is not ours
// at all is an error, and the node starts as if it had none.
func loadPeers(dir string) (peersFile, error) {
	b, err := fsutil.ReadFileLimit(filepath.Join(dir, PeersFile), maxPeersFile)
	if errors.Is(err, fs.ErrNotExist) {
		return peersFile{}, nil
	}
	if err != nil {
		return peersFile{}, err
	}
	var f peersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return peersFile{}, fmt.Errorf("%s: %w", PeersFile, err)
	}
	f.Seeds = validSeeds(f.Seeds)
	seen := make(map[string]bool)
	f.Peers = slices.DeleteFunc(f.Peers, func(k mesh.KnownAddr) bool {
		bad := !k.Valid() || seen[k.ID]
		seen[k.ID] = true
		return bad
	})
	if len(f.Peers) > mesh.MaxKnown {
		f.Peers = f.Peers[:mesh.MaxKnown]
	}
	return f, nil
}

// validSeeds keeps the host:port seeds, without repeats, at most maxSeeds.
func validSeeds(seeds []string) []string {
	var out []string
	for _, s := range seeds {
		if len(out) == maxSeeds {
			break
		}
		if _, _, err := net.SplitHostPort(s); err != nil || len(s) > 300 || slices.Contains(out, s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func savePeers(dir string, f peersFile) error {
	if f.Seeds == nil {
		f.Seeds = []string{}
	}
	if f.Peers == nil {
		f.Peers = []mesh.KnownAddr{}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, PeersFile), b)
}

// keepPeers writes the peers file soon after a peer is verified or lost,
// every peersRefresh while the node runs, and once more when ctx ends.
// wake is signalled by the mesh subscription.
func (n *Node) keepPeers(ctx context.Context, seeds []string, wake <-chan struct{}) error {
	var last peersFile
	save := func(force bool) {
		f := peersFile{Seeds: seeds, Peers: n.mesh.KnownAddrs()}
		if !force && samePeers(f, last) {
			return
		}
		if err := savePeers(n.cfg.DataDir, f); err != nil {
			n.log.Warn("could not remember peers' addresses", "err", err)
			return
		}
		last = f
	}
	save(true) // the seeds of this run, at once
	refresh := time.NewTicker(peersRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			save(true)
			return nil
		case <-refresh.C:
			save(true)
		case <-wake:
			select {
			case <-time.After(peersSaveDelay):
			case <-ctx.Done():
			}
			save(false)
		}
	}
}

// samePeers compares two files but for the times seen.
func samePeers(a, b peersFile) bool {
	if !slices.Equal(a.Seeds, b.Seeds) || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Peers {
		x, y := a.Peers[i], b.Peers[i]
		if x.ID != y.ID || x.Gossip != y.Gossip || x.TLS != y.TLS {
			return false
		}
	}
	return true
}
