package message

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
)

// waitFor fails the test unless cond becomes true within a few seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 5*time.Second, cond)
}

// testLogger writes to t.Log; benchmarks discard.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

// identity is a test peer's key, id and self-signed certificate.
type identity struct {
	key  ed25519.PrivateKey
	id   string
	cert tls.Certificate
}

func newIdentity(t testing.TB) identity {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := mesh.IDFromPublicKey(pub)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return identity{key: key, id: id, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// peerIDOf returns the peer id of the certificate in raw.
func peerIDOf(raw [][]byte) (string, error) {
	if len(raw) != 1 {
		return "", fmt.Errorf("want one certificate, got %d", len(raw))
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "", err
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", errors.New("not an Ed25519 certificate")
	}
	return mesh.IDFromPublicKey(pub), nil
}

// tlsConfig is a mutual TLS 1.3 configuration in the manner of mesh: the
// certificate is self-signed and the peer is whoever holds the key; the
// client additionally insists on reaching want.
func (id identity) tlsConfig(server bool, want string) *tls.Config {
	cfg := &tls.Config{
		Certificates:       []tls.Certificate{id.cert},
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true, // verified below: the certificate hash is the identity
		ClientAuth:         tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			got, err := peerIDOf(raw)
			if err != nil {
				return err
			}
			if !server && got != want {
				return fmt.Errorf("reached %s, want %s", mesh.ShortID(got), mesh.ShortID(want))
			}
			return nil
		},
	}
	return cfg
}

// tlsStream is a Stream over a completed TLS handshake.
type tlsStream struct {
	*tls.Conn
	peer string
}

func (s tlsStream) PeerID() string { return s.peer }

var _ Stream = tlsStream{}

// testNet is the address book of the test peers, standing in for mesh.
type testNet struct {
	mu    sync.Mutex        // guards addrs
	addrs map[string]string // peer id → listen address
}

func newTestNet() *testNet { return &testNet{addrs: make(map[string]string)} }

func (n *testNet) addr(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[id]
}

// dialTLS opens a TLS stream from id to peer.
func dialTLS(ctx context.Context, id identity, peer, addr string) (*tls.Conn, error) {
	if addr == "" {
		return nil, fmt.Errorf("no address for %s", mesh.ShortID(peer))
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, id.tlsConfig(false, peer))
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// testPeer is a Service listening on 127.0.0.1:0 with TLS, as a node
// would run it.
type testPeer struct {
	t   testing.TB
	id  identity
	net *testNet
	svc *Service
	ln  net.Listener

	dials    atomic.Int32 // outgoing dials made
	accepted atomic.Int32 // incoming streams handed to the service

	wg      sync.WaitGroup                                 // accept loop and stream handlers
	mu      sync.Mutex                                     // guards the fields below
	deliver func(ctx context.Context, env *Envelope) error // runs first in Deliver when set; its error refuses
	got     []*Envelope                                    // delivered envelopes, in order
	conns   []net.Conn                                     // accepted raw connections
}

// newPeer starts a peer; its cleanup closes everything and waits. mod may
// adjust the Config.
func newPeer(t testing.TB, n *testNet, mod func(*Config)) *testPeer {
	t.Helper()
	p := &testPeer{t: t, id: newIdentity(t), net: n}
	cfg := DefaultConfig()
	cfg.Key = p.id.key
	cfg.Name = func() string { return "peer " + mesh.ShortID(p.id.id) }
	cfg.Logger = testLogger(t).With("self", mesh.ShortID(p.id.id))
	cfg.AckTimeout = 2 * time.Second
	cfg.Dial = func(ctx context.Context, peer, proto string) (Stream, error) {
		if proto != ALPN {
			return nil, fmt.Errorf("unexpected protocol %q", proto)
		}
		p.dials.Add(1)
		c, err := dialTLS(ctx, p.id, peer, n.addr(peer))
		if err != nil {
			return nil, err
		}
		return tlsStream{c, peer}, nil
	}
	cfg.Deliver = func(ctx context.Context, env *Envelope) error {
		p.mu.Lock()
		hook := p.deliver
		p.mu.Unlock()
		if hook != nil {
			if err := hook(ctx, env); err != nil {
				return err
			}
		}
		p.mu.Lock()
		p.got = append(p.got, env)
		p.mu.Unlock()
		return nil
	}
	if mod != nil {
		mod(&cfg)
	}
	p.svc = New(cfg)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	n.mu.Lock()
	n.addrs[p.id.id] = ln.Addr().String()
	n.mu.Unlock()
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.stop)
	return p
}

func (p *testPeer) acceptLoop() {
	defer p.wg.Done()
	for {
		raw, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, raw)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c := tls.Server(raw, p.id.tlsConfig(true, ""))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.HandshakeContext(ctx)
			cancel()
			if err != nil {
				raw.Close()
				return
			}
			cs := c.ConnectionState()
			peer, err := peerIDOf(rawCerts(cs))
			if err != nil || cs.NegotiatedProtocol != ALPN {
				raw.Close()
				return
			}
			p.accepted.Add(1)
			p.svc.HandleStream(tlsStream{c, peer})
		}()
	}
}

func rawCerts(cs tls.ConnectionState) [][]byte {
	var raw [][]byte
	for _, c := range cs.PeerCertificates {
		raw = append(raw, c.Raw)
	}
	return raw
}

// stop takes the peer off the network: no new streams, the service closed,
// every goroutine returned. It may be called more than once.
func (p *testPeer) stop() {
	p.ln.Close()
	p.svc.Close()
	p.cutAll()
	p.wg.Wait()
}

// cutAll closes every accepted connection abruptly, below TLS.
func (p *testPeer) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// setDeliver installs a hook that runs first in Deliver.
func (p *testPeer) setDeliver(fn func(ctx context.Context, env *Envelope) error) {
	p.mu.Lock()
	p.deliver = fn
	p.mu.Unlock()
}

// delivered returns what Deliver has accepted so far.
func (p *testPeer) delivered() []*Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Envelope(nil), p.got...)
}

func (p *testPeer) countDelivered(id string) int {
	n := 0
	for _, e := range p.delivered() {
		if e.ID == id {
			n++
		}
	}
	return n
}

// rawClient opens a TLS stream to p as id and returns it without a
// Service, to write arbitrary frames.
func rawClient(t testing.TB, id identity, p *testPeer) *tls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialTLS(ctx, id, p.id.id, p.net.addr(p.id.id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pipeStream is a Stream over net.Pipe, for tests that need no network.
type pipeStream struct {
	net.Conn
	peer string
}

func (p pipeStream) PeerID() string { return p.peer }

// newPipeStreams returns a Stream claiming to come from peer, and the
// other end of it.
func newPipeStreams(peer string) (Stream, net.Conn) {
	c1, c2 := net.Pipe()
	return pipeStream{c1, peer}, c2
}
