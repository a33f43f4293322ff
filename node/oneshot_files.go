package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"lanchat/filexfer"
	"lanchat/mesh"
	"lanchat/node/api"
)

// DefaultOneShotFileWait is how long a one-shot send-file waits, by
// default, for the recipient to be found, to decide and to take the
// files.
const DefaultOneShotFileWait = 2 * time.Minute

// SendFiles is send-file with no node running on the data directory: it
// finds the recipient the way Send does, offers the files directly, and
// waits at most wait (the recipient may be away, or a person deciding)
// while the data moves, calling progress with every change. It returns
// the transfer as it stands when it is done, declined or failed, or when
// wait ran out; then the offer stays in the data directory's
// file-outbox.json, and the next node run on it (or the same command run
// again) continues it under the same id, from what the recipient holds.
// An answer the recipient gave meanwhile holds for that next try.
func (o *OneShot) SendFiles(ctx context.Context, req api.FileOfferRequest, wait time.Duration, progress func(api.Transfer)) (api.Transfer, error) {
	if len(req.Paths) == 0 || len(req.Paths) > api.MaxOfferPaths {
		return api.Transfer{}, api.Errorf(api.CodeInvalid, fmt.Sprintf("an offer needs 1 to %d paths", api.MaxOfferPaths))
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	dir := &directory{peers: map[string]mesh.Peer{}}
	msvc := o.messageService(dir)
	defer msvc.Close()
	svc, closeAll, err := o.chatService(dir, msvc)
	if err != nil {
		return api.Transfer{}, apiError(err)
	}
	defer closeAll()
	p, err := o.findRecipient(ctx, req.To, dir, svc)
	if err != nil {
		return api.Transfer{}, err
	}

	fcfg := filexfer.DefaultServiceConfig(o.cfg.DownloadDir)
	fcfg.SendOnly = true
	fcfg.Self = o.id.ID
	fcfg.OutboxPath = filepath.Join(o.cfg.DataDir, FileOutboxFile)
	fcfg.Log = o.log.With("part", "files")
	fcfg.Dial = func(ctx context.Context, peer, proto string) (net.Conn, error) {
		q, ok := dir.Peer(peer)
		if !ok || !q.Online() {
			return nil, fmt.Errorf("%w: %s", mesh.ErrPeerOffline, mesh.ShortID(peer))
		}
		return o.dialer.DialAddr(ctx, netip.AddrPortFrom(q.Addr, q.TLSPort).String(), peer, proto)
	}
	files, err := filexfer.NewService(fcfg)
	if err != nil {
		return api.Transfer{}, err
	}
	defer files.Close()
	// changed only wakes the loop: it reads the transfer as it is, so no
	// change that matters (the last) can be lost to a full channel.
	changed := make(chan struct{}, 1)
	defer files.Subscribe(func(filexfer.Transfer) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})()
	t, err := files.Offer(p.ID, req.Paths)
	if err != nil {
		return api.Transfer{}, filesError(err)
	}
	show := func(t filexfer.Transfer) api.Transfer {
		a := apiTransfer(t, svc.PeerRef)
		if progress != nil {
			progress(a)
		}
		return a
	}
	last := show(t)

	// Look for the recipient again while away; try again (a stream cut,
	// an answer that took longer than one stream waits) once a second.
	online := make(chan mesh.Peer, 1)
	looked := make(chan struct{}) // closed when the looking ends
	defer func() { cancel(); <-looked }()
	go func() {
		defer close(looked)
		for ctx.Err() == nil {
			if q, ok := dir.Peer(p.ID); ok && q.Online() {
				return
			}
			ps, _ := o.Discover(ctx, func(ps []mesh.Peer) bool {
				for _, q := range ps {
					if q.ID == p.ID {
						return q.Online()
					}
				}
				return false
			})
			for _, q := range ps {
				if q.ID == p.ID && q.Online() {
					online <- q
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case q := <-online:
			dir.set([]mesh.Peer{q})
			files.Retry(p.ID)
		case <-tick.C:
			files.Retry(p.ID)
		case <-changed:
		case <-ctx.Done():
			now, err := files.Transfer(t.ID)
			if err != nil {
				return last, nil
			}
			return apiTransfer(now, svc.PeerRef), nil
		}
		now, err := files.Transfer(t.ID)
		if err != nil {
			return last, err
		}
		if now.Updated != t.Updated || now.State != t.State {
			t = now
			last = show(t)
		}
		switch t.State {
		case filexfer.StateDone, filexfer.StateDeclined, filexfer.StateFailed:
			return apiTransfer(t, svc.PeerRef), nil
		}
	}
}
