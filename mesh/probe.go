package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Reach is what this node can reach of a peer right now, port by port:
// the answers lanchat doctor gives about one peer.
type Reach struct {
	Addr       netip.Addr
	GossipPort uint16
	TLSPort    uint16
	// UDP is a memberlist ping to the gossip port: its round trip, or
	// why none came back (a firewall dropping UDP shows here first).
	UDPRTT time.Duration
	UDPErr error
	// TCP is a connection to the gossip port, which memberlist falls
	// back to when UDP is lost.
	TCPRTT time.Duration
	TCPErr error
	// TLS is a handshake on the message port with the peer's key
	// checked: what every message, room and file needs.
	TLSRTT time.Duration
	TLSErr error
}

// ErrNoAddress: the peer was never seen at an address.
var ErrNoAddress = errors.New("no known address")

// Reach probes peer id at its last known address. Each probe is bounded by
// timeout; a finished probe that failed is reported in its field, and
// err is only for a peer this node does not know.
func (m *Mesh) Reach(ctx context.Context, id string, timeout time.Duration) (Reach, error) {
	m.mu.Lock()
	e := m.table.peers[id]
	var r Reach
	var member string
	if e != nil {
		r.Addr, r.GossipPort, r.TLSPort, member = e.Addr, e.GossipPort, e.TLSPort, e.member
	}
	ml := m.ml
	m.mu.Unlock()
	if e == nil {
		return Reach{}, fmt.Errorf("%w: %s", ErrUnknownPeer, ShortID(id))
	}
	if !r.Addr.IsValid() {
		return r, fmt.Errorf("%w for %s", ErrNoAddress, ShortID(id))
	}
	gossip := netip.AddrPortFrom(r.Addr, r.GossipPort)
	if ml == nil {
		r.UDPErr = errors.New("gossip is not running")
	} else {
		// memberlist's own ping: the peer answers it only if its node name
		// is the run we know, so an answer also says the run is current.
		start := time.Now()
		rtt, err := ml.Ping(member, net.UDPAddrFromAddrPort(gossip))
		if err != nil {
			r.UDPErr = err
		} else if rtt <= 0 {
			r.UDPRTT = time.Since(start)
		} else {
			r.UDPRTT = rtt
		}
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	c, err := (&net.Dialer{}).DialContext(dctx, "tcp", gossip.String())
	cancel()
	if err != nil {
		r.TCPErr = err
	} else {
		r.TCPRTT = time.Since(start)
		c.Close()
	}
	dctx, cancel = context.WithTimeout(ctx, timeout)
	start = time.Now()
	s, err := m.dialer.DialAddr(dctx, net.JoinHostPort(r.Addr.String(), strconv.Itoa(int(r.TLSPort))), id, ALPNPing)
	cancel()
	if err != nil {
		r.TLSErr = err
	} else {
		r.TLSRTT = time.Since(start)
		s.Close()
	}
	return r, nil
}
