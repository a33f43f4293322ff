package node

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"lanchat/filexfer"
	"lanchat/mesh"
)

// Files and folders: the node's wiring of filexfer.Service. The service
// holds the rules (offers, asking, auto-accept, retries); the node gives
// it streams, names and the peers' comings and goings.

// DownloadsDir is the download folder's name inside the data directory,
// used when Config.DownloadDir is empty.
const DownloadsDir = "downloads"

func (n *Node) buildFiles() error {
	dir := n.cfg.DownloadDir
	if dir == "" {
		dir = filepath.Join(n.cfg.DataDir, DownloadsDir)
	}
	m := n.mesh
	fcfg := filexfer.DefaultServiceConfig(dir)
	fcfg.Self = n.id.ID
	fcfg.Dial = func(ctx context.Context, peer, proto string) (net.Conn, error) { return m.Dial(ctx, peer, proto) }
	if len(n.cfg.AcceptFrom) > 0 {
		fcfg.AcceptFrom = n.acceptsFrom
	}
	fcfg.AcceptMaxSize = n.cfg.AcceptMaxSize
	fcfg.Log = n.log.With("part", "files")
	svc, err := filexfer.NewService(fcfg)
	if err != nil {
		return fmt.Errorf("download folder %s: %w", dir, err)
	}
	n.files = svc
	m.Handle(filexfer.ALPN, func(s *mesh.Stream) { svc.HandleStream(s, s.PeerID()) })
	return nil
}

// acceptsFrom reports whether Config.AcceptFrom names peer: by id, or by
// a name that resolves to it the way `send` resolves names.
func (n *Node) acceptsFrom(peer string) bool {
	for _, q := range n.cfg.AcceptFrom {
		q = strings.TrimSpace(q)
		if q == peer {
			return true
		}
		if p, err := n.chat.Resolve(q); err == nil && p.ID == peer {
			return true
		}
	}
	return false
}

// filesPeerEvent sends what waits for a peer that came back.
func (n *Node) filesPeerEvent(ev mesh.Event) {
	switch ev.Change {
	case mesh.Joined, mesh.Returned, mesh.Verified:
		n.files.Retry(ev.Peer.ID)
	}
}

func (n *Node) freeFiles() {
	if n.files != nil {
		n.files.Close()
	}
}

// SendFiles offers files and folders to a peer (a name, id or id prefix)
// and sends them in the background, resuming after cuts, until the
// recipient has verified everything or says no.
func (n *Node) SendFiles(to string, paths []string) (filexfer.Transfer, error) {
	if n.closed() {
		return filexfer.Transfer{}, ErrClosed
	}
	p, err := n.chat.Resolve(to)
	if err != nil {
		return filexfer.Transfer{}, err
	}
	return n.files.Offer(p.ID, paths)
}

// Transfers lists offers and transfers, both ways, oldest first.
func (n *Node) Transfers() []filexfer.Transfer { return n.files.Transfers() }

// AcceptTransfer accepts an offer waiting for a decision.
func (n *Node) AcceptTransfer(id string) (filexfer.Transfer, error) { return n.files.Accept(id) }

// DeclineTransfer declines an offer waiting for a decision.
func (n *Node) DeclineTransfer(id string) (filexfer.Transfer, error) { return n.files.Decline(id) }
