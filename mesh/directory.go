package mesh

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"
)

// maxDirectory bounds a directory reply read from the network.
const maxDirectory = 1 << 20

// Directory replies are streamed, an entry at a time, so a reply nobody
// reads holds one entry and the TLS buffers, not the whole list; at most
// dirPerSource of them are served to one address at once and dirServed in
// all (a one-shot command asks a few nodes once), and each must be read
// within dirTimeout. A reply stops at maxDirectory bytes, which is all a
// client reads.
const (
	dirPerSource = 2
	dirServed    = 16
	dirTimeout   = 5 * time.Second
)

// dirGate counts the directory replies being written, per source.
type dirGate struct {
	mu    sync.Mutex
	by    map[netip.Addr]int
	total int
}

func (g *dirGate) enter(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.by == nil {
		g.by = map[netip.Addr]int{}
	}
	if g.total >= dirServed || g.by[src] >= dirPerSource {
		return false
	}
	g.by[src]++
	g.total++
	return true
}

func (g *dirGate) leave(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.by[src]--; g.by[src] <= 0 {
		delete(g.by, src)
	}
	g.total--
}

// serveDirectory answers a lanchat/dir/1 stream: one JSON array of peers,
// this node first, then the stream closes. It is how a one-shot command,
// which does not join the gossip, learns names and addresses.
func (m *Mesh) serveDirectory(s *Stream) {
	defer s.Close()
	src := remoteIP(s.Conn)
	if !m.dirs.enter(src) {
		m.log.Info("refusing a directory request: too many at once", "remote", s.Conn.RemoteAddr())
		return
	}
	defer m.dirs.leave(src)
	s.SetWriteDeadline(time.Now().Add(dirTimeout))
	w := bufio.NewWriterSize(s, 16<<10)
	written := 0
	write := func(b []byte) bool {
		if written+len(b) > maxDirectory {
			return false
		}
		n, err := w.Write(b)
		written += n
		return err == nil
	}
	list := append([]Peer{m.Self()}, m.Peers()...)
	ok := write([]byte{'['})
	for i, p := range list {
		b, err := json.Marshal(p)
		if err != nil || !ok {
			break
		}
		// Leave room for the closing bracket: a reply cut short is still
		// a whole JSON array, of the entries that fit.
		if written+len(b)+2 > maxDirectory {
			break
		}
		if i > 0 {
			ok = write([]byte{','})
		}
		ok = ok && write(b)
	}
	if ok {
		ok = write([]byte("]\n"))
	}
	if err := w.Flush(); err != nil || !ok {
		m.log.Debug("directory reply", "peer", ShortID(s.PeerID()), "err", err, "bytes", written)
	}
}

// FetchDirectory asks the node at addr (a TLS host:port) for its view of
// the network. expect is the node's id, or "" when unknown; the first
// entry of the reply is the responder itself, checked against its key.
// Entries that do not pass the same checks as gossip are dropped.
func (d *Dialer) FetchDirectory(ctx context.Context, addr, expect string) ([]Peer, error) {
	s, err := d.DialAddr(ctx, addr, expect, ALPNDirectory)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetReadDeadline(dl)
	} else {
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	out, err := decodeDirectory(s, s.PeerID())
	if err != nil {
		return nil, fmt.Errorf("directory from %s: %w", addr, err)
	}
	return out, nil
}

// decodeDirectory reads a directory reply from responder: at most
// maxDirectory bytes of JSON, whose first entry must be the responder
// itself. Other entries that do not pass the same checks as gossip are
// dropped; the responder's own entry must pass them, since only it is
// vouched for by the handshake.
func decodeDirectory(r io.Reader, responder string) ([]Peer, error) {
	var raw []Peer
	if err := json.NewDecoder(io.LimitReader(r, maxDirectory)).Decode(&raw); err != nil {
		return nil, err
	}
	if len(raw) == 0 || raw[0].ID != responder || !validListed(raw[0]) {
		return nil, errors.New("does not start with a valid entry for the responder")
	}
	out := raw[:0]
	for i, p := range raw {
		if !validListed(p) {
			continue
		}
		p.Verified = i == 0 // only the responder is proven, by its handshake
		out = append(out, p)
	}
	return out, nil
}

func validListed(p Peer) bool {
	return ValidID(p.ID) && ValidName(p.Name) == nil && ValidStatus(p.Status) == nil && p.State <= Left
}
