package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"sync"

	"lanchat/filexfer"
	"lanchat/mesh"
	"lanchat/message/chat"
	"lanchat/node/api"
)

// Files and folders: the node's wiring of filexfer.Service. The service
// holds the rules (offers, asking, auto-accept, retries); the node gives
// it streams, names and the peers' comings and goings.

// DownloadsDir is the download folder's name inside the data directory,
// used when Config.DownloadDir is empty.
const DownloadsDir = "downloads"

// FileOutboxFile, in the data directory, keeps the outgoing offers not yet
// finished, so they survive a restart.
const FileOutboxFile = "file-outbox.json"

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
	fcfg.OutboxPath = filepath.Join(n.cfg.DataDir, FileOutboxFile)
	fcfg.Log = n.log.With("part", "files")
	svc, err := filexfer.NewService(fcfg)
	if err != nil {
		return fmt.Errorf("download folder %s: %w", dir, err)
	}
	n.files = svc
	// The service tells every change; an offer is announced once, when it
	// starts to wait (its progress while waiting is not a new offer).
	var mu sync.Mutex // guards offered
	offered := map[string]bool{}
	svc.Subscribe(func(t filexfer.Transfer) {
		mu.Lock()
		was := offered[t.ID]
		if t.State == filexfer.StateOffered {
			offered[t.ID] = true
		} else {
			delete(offered, t.ID)
		}
		mu.Unlock()
		n.publishTransfer(t, was)
	})
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

// filesPeerEvent sends what waits for a peer that came back, and gives up
// the streams of one lost: after a replug they resume as soon as the peer
// is listed again, rather than when TCP's backoff next retransmits.
func (n *Node) filesPeerEvent(ev mesh.Event) {
	switch ev.Change {
	case mesh.Joined, mesh.Returned, mesh.Verified:
		n.files.Retry(ev.Peer.ID)
	case mesh.Lost:
		n.files.Cut(ev.Peer.ID)
	}
}

func (n *Node) freeFiles() {
	if n.files != nil {
		n.files.Close()
	}
}

// The node implements api.Files in process.
var _ api.Files = (*Node)(nil)

// OfferFiles implements api.Files.
func (n *Node) OfferFiles(ctx context.Context, req api.FileOfferRequest) (api.Transfer, error) {
	if n.closed() {
		return api.Transfer{}, ErrClosed
	}
	if len(req.Paths) == 0 || len(req.Paths) > api.MaxOfferPaths {
		return api.Transfer{}, api.Errorf(api.CodeInvalid, fmt.Sprintf("an offer needs 1 to %d paths", api.MaxOfferPaths))
	}
	p, err := n.chat.Resolve(req.To)
	if err != nil {
		return api.Transfer{}, apiError(err)
	}
	t, err := n.files.Offer(p.ID, req.Paths)
	if err != nil {
		return api.Transfer{}, filesError(err)
	}
	return n.apiTransfer(t), nil
}

// Transfers implements api.Files.
func (n *Node) Transfers(ctx context.Context) ([]api.Transfer, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	ts := n.files.Transfers()
	out := make([]api.Transfer, len(ts))
	for i, t := range ts {
		out[i] = n.apiTransfer(t)
	}
	return out, nil
}

// AcceptTransfer implements api.Files.
func (n *Node) AcceptTransfer(ctx context.Context, req api.TransferRequest) (api.Transfer, error) {
	return n.settle(req, n.files.Accept)
}

// DeclineTransfer implements api.Files.
func (n *Node) DeclineTransfer(ctx context.Context, req api.TransferRequest) (api.Transfer, error) {
	return n.settle(req, n.files.Decline)
}

func (n *Node) settle(req api.TransferRequest, f func(string) (filexfer.Transfer, error)) (api.Transfer, error) {
	if n.closed() {
		return api.Transfer{}, ErrClosed
	}
	t, err := f(strings.TrimSpace(req.ID))
	if err != nil {
		return api.Transfer{}, filesError(err)
	}
	return n.apiTransfer(t), nil
}

// filesError maps the service's errors onto the API's codes.
func filesError(err error) error {
	switch {
	case errors.Is(err, filexfer.ErrUnknownTransfer):
		return api.Errorf(api.CodeNotFound, err.Error())
	case errors.Is(err, filexfer.ErrNotPending), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission),
		errors.Is(err, filexfer.ErrTooMany):
		return api.Errorf(api.CodeInvalid, err.Error())
	case errors.Is(err, filexfer.ErrClosed):
		return fmt.Errorf("%w: %v", api.ErrClosed, err)
	}
	return apiError(err)
}

func (n *Node) apiTransfer(t filexfer.Transfer) api.Transfer { return apiTransfer(t, n.chat.PeerRef) }

// apiTransfer is a transfer as the API shows it, its peer named by
// peerRef.
func apiTransfer(t filexfer.Transfer, peerRef func(string) chat.PeerRef) api.Transfer {
	a := api.Transfer{
		ID: t.ID, Direction: "out", Peer: ref(peerRef(t.Peer)), Names: t.Names, Files: t.Files,
		Total: t.Total, Done: t.Done, FilesDone: t.FilesDone, Current: t.Current, CurrentDone: t.CurrentDone, CurrentSize: t.CurrentSize, State: t.State, Error: t.Error, Updated: t.Updated, Sent: t.Sent,
	}
	if a.Names == nil {
		a.Names = []string{}
	}
	if t.Incoming {
		a.Direction = "in"
	}
	for _, s := range t.Skipped {
		a.Skipped = append(a.Skipped, s.Path)
	}
	return a
}

// publishTransfer turns the service's changes into events: a file-offer
// when an offer starts waiting for a decision, and a transfer for every
// change.
func (n *Node) publishTransfer(t filexfer.Transfer, wasOffered bool) {
	a := n.apiTransfer(t)
	if t.State == filexfer.StateOffered && !wasOffered {
		n.hub.publish(api.FileOffer{Type: api.TypeFileOffer, ID: a.ID, From: a.Peer, Names: a.Names, Files: a.Files, Total: a.Total})
	}
	n.hub.publish(api.TransferChange{Type: api.TypeTransfer, Transfer: a})
}
