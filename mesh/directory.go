package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxDirectory bounds a directory reply read from the network.
const maxDirectory = 1 << 20

// serveDirectory answers a lanchat/dir/1 stream: one JSON array of peers,
// this node first, then the stream closes. It is how a one-shot command,
// which does not join the gossip, learns names and addresses.
func (m *Mesh) serveDirectory(s *Stream) {
	defer s.Close()
	list := append([]Peer{m.Self()}, m.Peers()...)
	s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(s).Encode(list); err != nil {
		m.log.Debug("directory reply", "peer", ShortID(s.PeerID()), "err", err)
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
