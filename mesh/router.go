package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// maxConns bounds the streams served at once, so a flood of connections
// cannot exhaust file descriptors or memory.
const maxConns = 1024

// Limits that keep honest peers served while one host floods the port (as
// OpenSSH's PerSourceMaxStartups and MaxStartups do): one address holds at
// most maxPerSource connections at once, however many keys it has, so a
// single host cannot fill maxConns; and past startupsEarly connections
// still in their handshake, new ones are dropped at random, more often the
// nearer startupsFull they are, and always at it, so that a flood of slow
// handshakes from many addresses starves nobody of established streams.
// And one key holds at most maxPerKey streams past their handshake,
// from however many addresses: an identity is free to make but costs a
// handshake each, and one that holds many hosts (or spoofs their
// addresses on the LAN) cannot take more than its share of maxConns
// either. An honest peer holds a few streams (messages, a catch-up, a
// ping, a file transfer or a few offers waiting for a decision).
const (
	maxPerSource  = 64
	maxPerKey     = 64
	startupsEarly = 64
	startupsFull  = 256
)

// Handle routes incoming streams that negotiated proto to fn, which runs
// in its own goroutine and owns the stream. Register before Listen.
func (m *Mesh) Handle(proto string, fn func(*Stream)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[proto] = fn
}

func (m *Mesh) acceptLoop(ctx context.Context, ln net.Listener) {
	sem := make(chan struct{}, maxConns)
	lim := newAdmission()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("accept", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		src := remoteIP(c)
		if m.cfg.BindAddr.IsUnspecified() {
			// Bound to every address: only those of the LAN interfaces
			// in use (and loopback) take streams, not a VPN's or a
			// container bridge's.
			if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
				if a, ok := netip.AddrFromSlice(la.IP); ok && !m.routes.ownAddrs().has(a) {
					m.log.Info("refusing a connection to an address not in use", "local", c.LocalAddr(), "remote", c.RemoteAddr())
					c.Close()
					continue
				}
			}
		}
		if why := lim.admit(src); why != "" {
			m.log.Info("refusing a connection: "+why, "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			lim.handshaken()
			lim.done(src)
			m.log.Warn("too many connections, refusing one", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			<-sem
			lim.handshaken()
			lim.done(src)
			continue
		}
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			defer func() { <-sem }()
			defer lim.done(src)
			defer func() {
				m.mu.Lock()
				delete(m.conns, c)
				m.mu.Unlock()
				c.Close()
			}()
			m.serveConn(ctx, c, lim)
		}()
	}
}

// serveConn completes the handshake, which proves the remote peer's id,
// and hands the stream to the handler of the protocol both sides agreed on.
func (m *Mesh) serveConn(ctx context.Context, c net.Conn, lim *admission) {
	m.mu.Lock()
	protos := make([]string, 0, len(m.handlers))
	for p := range m.handlers {
		protos = append(protos, p)
	}
	m.mu.Unlock()
	slices.Sort(protos)
	tc := tls.Server(c, serverTLSConfig(m.cert, protos))
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	lim.handshaken()
	if err != nil {
		m.log.Info("refused a connection: bad handshake", "remote", c.RemoteAddr(), "err", err)
		return
	}
	st := tc.ConnectionState()
	id, err := peerIDOf(rawCerts(st))
	if err != nil {
		m.log.Info("refused a connection", "remote", c.RemoteAddr(), "err", err)
		return
	}
	if err := proveNetwork(tc, m.cfg.Network, false); err != nil {
		// Said once a while, and saying nothing of the key.
		m.log.Info("refused a connection: it does not prove this network's key", "remote", c.RemoteAddr())
		return
	}
	if !lim.admitKey(id) {
		m.log.Info("refused a connection: too many streams from one key", "remote", c.RemoteAddr(), "peer", ShortID(id))
		return
	}
	defer lim.doneKey(id)
	m.mu.Lock()
	h := m.handlers[st.NegotiatedProtocol]
	m.mu.Unlock()
	if h == nil {
		m.log.Info("refused a connection: no protocol in common", "remote", c.RemoteAddr(), "peer", ShortID(id))
		return
	}
	h(&Stream{Conn: tc, peer: id})
}

// closeConns closes every accepted stream, so Close does not wait on a
// handler blocked reading from a peer.
func (m *Mesh) closeConns() {
	m.mu.Lock()
	conns := make([]net.Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// admission counts the connections of each source address, those still
// in their handshake, and the streams of each key, for acceptLoop's
// limits.
type admission struct {
	mu        sync.Mutex         // guards the fields below
	perSource map[netip.Addr]int // connections open, by source; at most maxConns entries
	perKey    map[string]int     // streams past their handshake, by peer id; at most maxConns entries
	startups  int                // accepted connections not yet past their handshake
}

func newAdmission() *admission {
	return &admission{perSource: map[netip.Addr]int{}, perKey: map[string]int{}}
}

// admitKey counts a stream whose handshake proved id, or says it is one
// too many for that key.
func (a *admission) admitKey(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perKey[id] >= maxPerKey {
		return false
	}
	a.perKey[id]++
	return true
}

// doneKey says one stream admitted by admitKey has ended.
func (a *admission) doneKey(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perKey[id]--; a.perKey[id] <= 0 {
		delete(a.perKey, id)
	}
}

// admit counts a new connection from src, or says why it is refused.
func (a *admission) admit(src netip.Addr) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perSource[src] >= maxPerSource {
		return "too many from one address"
	}
	if a.startups >= startupsFull {
		return "too many handshakes in progress"
	}
	if a.startups >= startupsEarly && rand.IntN(startupsFull-startupsEarly) < a.startups-startupsEarly {
		return "many handshakes in progress (random early drop)"
	}
	a.perSource[src]++
	a.startups++
	return ""
}

// handshaken says one connection's handshake is over, passed or failed.
func (a *admission) handshaken() {
	a.mu.Lock()
	a.startups--
	a.mu.Unlock()
}

// done says one connection from src has ended.
func (a *admission) done(src netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perSource[src]--; a.perSource[src] <= 0 {
		delete(a.perSource, src)
	}
}

// remoteIP is the connection's source address (its zone and port left
// out); the zero Addr, one bucket, for what is not IP.
func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().WithZone("").Unmap()
	}
	return netip.Addr{}
}
