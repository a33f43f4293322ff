package roomsync

import (
	"bytes"
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
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
)

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
	return identityOf(t, pub, key)
}

// seededIdentity is an identity from a one-byte seed, the same in every run.
func seededIdentity(t testing.TB, seed byte) identity {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return identityOf(t, key.Public().(ed25519.PublicKey), key)
}

func identityOf(t testing.TB, pub ed25519.PublicKey, key ed25519.PrivateKey) identity {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return identity{key: key, id: mesh.IDFromPublicKey(pub), cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

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

// tlsConfig is mutual TLS 1.3 in the manner of mesh: the peer is whoever
// holds the certificate's key; a client insists on reaching want.
func (id identity) tlsConfig(server bool, want string) *tls.Config {
	return &tls.Config{
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
}

type tlsStream struct {
	*tls.Conn
	peer string
}

func (s tlsStream) PeerID() string { return s.peer }

var _ message.Stream = tlsStream{}

// testNet is the address book of the test peers, standing in for mesh.
type testNet struct {
	wire atomic.Int64 // bytes dialled connections read and wrote, TLS included

	mu    sync.Mutex        // guards addrs
	addrs map[string]string // peer id → listen address
}

// countingConn counts the bytes a connection reads and writes into n.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c countingConn) Write(p []byte) (int, error) {
	k, err := c.Conn.Write(p)
	c.n.Add(int64(k))
	return k, err
}

func newTestNet() *testNet { return &testNet{addrs: make(map[string]string)} }

func (n *testNet) addr(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[id]
}

// dial opens a TLS stream from id to peer.
func (n *testNet) dial(ctx context.Context, id identity, peer string) (message.Stream, error) {
	addr := n.addr(peer)
	if addr == "" {
		return nil, fmt.Errorf("no address for %s", mesh.ShortID(peer))
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(countingConn{raw, &n.wire}, id.tlsConfig(false, peer))
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tlsStream{c, peer}, nil
}

// testPeer is a Syncer over a memSource, listening on 127.0.0.1:0 with
// TLS as a node would run it; handle replaces the Syncer's HandleStream
// when set (a hostile server).
type testPeer struct {
	t   testing.TB
	id  identity
	net *testNet
	src *memSource
	s   *Syncer
	ln  net.Listener
	wg  sync.WaitGroup // the accept loop and the stream handlers
}

func newPeer(t testing.TB, n *testNet, mod func(*Config), handle func(message.Stream)) *testPeer {
	return newPeerAs(t, n, newIdentity(t), mod, handle)
}

func newPeerAs(t testing.TB, n *testNet, id identity, mod func(*Config), handle func(message.Stream)) *testPeer {
	t.Helper()
	p := &testPeer{t: t, id: id, net: n, src: newMemSource()}
	cfg := DefaultConfig()
	cfg.Source = p.src
	cfg.Logger = testutil.Logger(t, slog.LevelDebug).With("self", mesh.ShortID(id.id))
	cfg.Dial = func(ctx context.Context, peer, proto string) (message.Stream, error) {
		if proto != ALPN {
			return nil, fmt.Errorf("unexpected protocol %q", proto)
		}
		return n.dial(ctx, id, peer)
	}
	if mod != nil {
		mod(&cfg)
	}
	p.s = New(cfg)
	if handle == nil {
		handle = p.s.HandleStream
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	n.mu.Lock()
	n.addrs[id.id] = ln.Addr().String()
	n.mu.Unlock()
	p.wg.Add(1)
	go p.acceptLoop(handle)
	t.Cleanup(p.stop)
	return p
}

func (p *testPeer) acceptLoop(handle func(message.Stream)) {
	defer p.wg.Done()
	for {
		raw, err := p.ln.Accept()
		if err != nil {
			return
		}
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
			var certs [][]byte
			for _, cert := range c.ConnectionState().PeerCertificates {
				certs = append(certs, cert.Raw)
			}
			peer, err := peerIDOf(certs)
			if err != nil || c.ConnectionState().NegotiatedProtocol != ALPN {
				raw.Close()
				return
			}
			handle(tlsStream{c, peer})
		}()
	}
}

func (p *testPeer) stop() {
	p.ln.Close()
	p.s.Close()
	p.wg.Wait()
}

// rawClient opens a TLS stream to p as a fresh identity, to write
// arbitrary frames.
func rawClient(t testing.TB, p *testPeer) message.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := p.net.dial(ctx, newIdentity(t), p.id.id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// memSource is a Source and a Sink over maps: per room, per author, the
// sealed events 1..n.
type memSource struct {
	mu          sync.Mutex                     // guards the fields below
	rooms       map[string]map[string][][]byte // room → author → events, seq 1 first
	authorize   func(peer, room string) error  // nil serves everyone
	memberships [][]byte
	aheads      []aheadCall       // what Ahead was told, in order
	heads       int               // Heads calls
	pages       int               // Page calls
	accepted    int               // Accept calls
	acceptErr   error             // Accept's answer when set
	inflate     map[string]uint64 // added to Heads' counts, by author: heads that announce more than Page holds
}

type aheadCall struct {
	peer, room string
	authors    []string
}

func newMemSource() *memSource { return &memSource{rooms: make(map[string]map[string][][]byte)} }

var (
	_ Source = (*memSource)(nil)
	_ Sink   = (*memSource)(nil)
)

func (m *memSource) Authorize(peer, room string) error {
	m.mu.Lock()
	f := m.authorize
	m.mu.Unlock()
	if f != nil {
		return f(peer, room)
	}
	return nil
}

func (m *memSource) Heads(ctx context.Context, room string) (Vector, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heads++
	v := make(Vector)
	for a, evs := range m.rooms[room] {
		if len(evs) > 0 {
			v[a] = uint64(len(evs)) + m.inflate[a]
		}
	}
	return v, nil
}

func (m *memSource) Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pages++
	evs := m.rooms[room][author]
	if after >= uint64(len(evs)) {
		return nil, nil
	}
	return slices.Clone(evs[after:min(uint64(len(evs)), after+uint64(limit))]), nil
}

func (m *memSource) Memberships(ctx context.Context) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.memberships), nil
}

func (m *memSource) Ahead(peer, room string, authors []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.aheads = append(m.aheads, aheadCall{peer, room, slices.Clone(authors)})
}

// Accept stores a page, insisting (as a store would) on contiguity.
func (m *memSource) Accept(ctx context.Context, from, room string, envs []*message.Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accepted++
	if m.acceptErr != nil {
		return m.acceptErr
	}
	for _, env := range envs {
		if env.Kind == message.KindRetention {
			continue // a setting from a STATE frame: not part of the prefixes
		}
		r := m.rooms[room]
		if r == nil {
			r = make(map[string][][]byte)
			m.rooms[room] = r
		}
		if held := r[env.Author]; env.Seq <= uint64(len(held)) && bytes.Equal(held[env.Seq-1], env.Sealed()) {
			continue // held already, as a store would say
		}
		if env.Seq != uint64(len(r[env.Author]))+1 {
			return fmt.Errorf("event %d of %s after %d", env.Seq, mesh.ShortID(env.Author), len(r[env.Author]))
		}
		r[env.Author] = append(r[env.Author], env.Sealed())
	}
	return nil
}

// locked runs f with m's lock held, for tests to read and set its fields.
func (m *memSource) locked(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

// put stores events as held.
func (m *memSource) put(room, author string, evs [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rooms[room]
	if r == nil {
		r = make(map[string][][]byte)
		m.rooms[room] = r
	}
	r[author] = evs
}

// vector is what the source holds of room.
func (m *memSource) vector(room string) Vector {
	v, _ := m.Heads(context.Background(), room)
	return v
}

// events returns the sealed events held of room, by author.
func (m *memSource) events(room string) map[string][][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][][]byte)
	for a, evs := range m.rooms[room] {
		if len(evs) > 0 {
			out[a] = slices.Clone(evs)
		}
	}
	return out
}

func (m *memSource) acceptCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accepted
}

// sealEvent seals event seq of author in room.
func sealEvent(t testing.TB, author identity, room string, seq uint64, body string) []byte {
	t.Helper()
	env := &message.Envelope{Conversation: room, Seq: seq, Kind: message.KindText, Body: body,
		Time: message.Timestamp{Wall: 1_700_000_000_000_000_000 + int64(seq)}}
	b, err := message.Seal(env, author.key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// history is every author's events in one room.
type history struct {
	room    string
	authors []identity
	events  map[string][][]byte // author id → events 1..n
}

// newHistory seals counts[i] events by each of len(counts) fresh authors.
func newHistory(t testing.TB, room string, counts []int) history {
	h := history{room: room, events: make(map[string][][]byte)}
	for i, n := range counts {
		a := seededIdentity(t, byte(i+1))
		h.authors = append(h.authors, a)
		evs := make([][]byte, n)
		for j := range evs {
			evs[j] = sealEvent(t, a, room, uint64(j+1), fmt.Sprintf("event %d of author %d", j+1, i))
		}
		h.events[a.id] = evs
	}
	return h
}

// give stores the first n[author] events of h in src.
func (h history) give(src *memSource, n map[string]int) {
	for a, evs := range h.events {
		if k := n[a]; k > 0 {
			src.put(h.room, a, slices.Clone(evs[:k]))
		}
	}
}

// ctxDeadline is how long a test waits for a frame.
const ctxDeadline = 10 * time.Second

// waitFor fails the test unless cond becomes true within a few seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 5*time.Second, cond)
}
