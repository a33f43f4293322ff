package mesh

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/netkey"
)

// A closed network (Config.Network, from an office key) keeps everyone
// without the key out at every layer:
//
//   - Gossip is encrypted and authenticated with the keyring memberlist
//     takes (AES-256-GCM, a key derived from each network key), and
//     carries a label that open networks do not: a node without the key
//     can neither read a packet, nor join, nor mark anyone dead, and its
//     packets are dropped unread.
//   - Every TLS stream proves the key before anything else is read: each
//     side sends an HMAC, keyed with the network's stream key, over the
//     connection's TLS exporter (RFC 8446 §7.5) and its role, and checks
//     the other's. The exporter is unique to the connection, so a proof
//     cannot be replayed on another, and it reveals nothing of the key.
//   - The mDNS advertisement carries the network's tag only (package
//     discovery), so nodes of other networks ignore each other without
//     connecting.
//
// A node may hold two keys during a change-over: it speaks with the
// first and accepts either, at every layer. Every closed network shares
// one memberlist label — a label cannot change key by key — and keys keep
// closed networks apart.

// networkLabel is memberlist's label in every closed network.
const networkLabel = "lanchat-closed"

// ErrNetworkKey: the other end of a stream does not hold this network's
// key (or holds one where this network has none).
var ErrNetworkKey = errors.New("the peer does not prove this network's key")

// exporterLabel names the TLS exporter the proof is made over.
const exporterLabel = "EXPORTER-lanchat-network"

const proofLen = sha256.Size

// applyNetwork sets memberlist up for a closed network; an open one (no
// keys) is left as it is.
func applyNetwork(c *memberlist.Config, ring netkey.Ring) error {
	if len(ring) == 0 {
		return nil
	}
	keys := make([][]byte, len(ring))
	for i, k := range ring {
		keys[i] = k.GossipKey()
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return fmt.Errorf("network key: %w", err)
	}
	c.Keyring = kr
	c.Label = networkLabel
	c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	return nil
}

// proof is what one side of conn sends: HMAC-SHA256 under key of the
// connection's exporter and the sender's role.
func proof(key, ekm []byte, client bool) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("lanchat network proof v1"))
	if client {
		h.Write([]byte{'c'})
	} else {
		h.Write([]byte{'s'})
	}
	h.Write(ekm)
	return h.Sum(nil)
}

// proveNetwork runs the stream proof on a handshaken connection. The
// client speaks first; the server checks its proof against every key of
// its ring before it sends its own, so a node without the key gets nothing
// from a server but a closed connection, and the client then checks the
// server's. Nothing else is read before the proofs pass; reads are bounded
// by a deadline. An open network (no keys) sends and checks nothing.
func proveNetwork(conn *tls.Conn, ring netkey.Ring, client bool) error {
	if len(ring) == 0 {
		return nil
	}
	st := conn.ConnectionState()
	ekm, err := st.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return fmt.Errorf("network proof: %w", err)
	}
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	send := func() error {
		if _, err := conn.Write(proof(ring[0].StreamKey(), ekm, client)); err != nil {
			return fmt.Errorf("network proof: %w", err)
		}
		return nil
	}
	check := func() error {
		var theirs [proofLen]byte
		if _, err := io.ReadFull(conn, theirs[:]); err != nil {
			return fmt.Errorf("%w (%v)", ErrNetworkKey, err)
		}
		ok := false
		for _, k := range ring {
			ok = hmac.Equal(theirs[:], proof(k.StreamKey(), ekm, !client)) || ok
		}
		if !ok {
			return ErrNetworkKey
		}
		return nil
	}
	steps := []func() error{check, send}
	if client {
		steps = []func() error{send, check}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return conn.SetDeadline(time.Time{})
}
