package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"time"
)

// maxConns bounds the streams served at once, so a flood of connections
// cannot exhaust file descriptors or memory.
const maxConns = 1024

// Handle routes incoming streams that negotiated proto to fn, which runs
// in its own goroutine and owns the stream. Register before Listen.
func (m *Mesh) Handle(proto string, fn func(*Stream)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[proto] = fn
}

func (m *Mesh) acceptLoop(ctx context.Context, ln net.Listener) {
	sem := make(chan struct{}, maxConns)
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
		select {
		case sem <- struct{}{}:
		default:
			m.log.Warn("too many connections, refusing one", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			<-sem
			continue
		}
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			defer func() { <-sem }()
			defer func() {
				m.mu.Lock()
				delete(m.conns, c)
				m.mu.Unlock()
				c.Close()
			}()
			m.serveConn(ctx, c)
		}()
	}
}

// serveConn completes the handshake, which proves the remote peer's id,
// and hands the stream to the handler of the protocol both sides agreed on.
func (m *Mesh) serveConn(ctx context.Context, c net.Conn) {
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
