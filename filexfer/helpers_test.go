package filexfer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
)

// peer is a test identity with its certificate.
type peer struct {
	id   string
	cert tls.Certificate
}

func newPeer(t testing.TB) peer {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return peer{id: mesh.IDFromPublicKey(pub), cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func idOf(raw [][]byte) (string, error) {
	if len(raw) != 1 {
		return "", errors.New("want one certificate")
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "", err
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", errors.New("not ed25519")
	}
	return mesh.IDFromPublicKey(pub), nil
}

// tlsConfig is mutual TLS 1.3 as mesh makes it: the peer is whoever holds
// the certificate's key.
func (p peer) tlsConfig() *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{p.cert},
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := idOf(raw)
			return err
		},
	}
}

// server is a receiver behind a TLS listener on 127.0.0.1:0.
type server struct {
	t    testing.TB
	rcv  *Receiver
	ln   net.Listener
	me   peer
	wg   sync.WaitGroup
	mu   sync.Mutex // guards results
	errs []error
	res  []Result
}

func newServer(t testing.TB, cfg ReceiverConfig) *server {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testutil.Logger(t, slog.LevelWarn)
	}
	r, err := NewReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, rcv: r, ln: ln, me: newPeer(t)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		r.Close()
		s.wg.Wait()
	})
	return s
}

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tc := tls.Server(c, s.me.tlsConfig())
			if err := tc.Handshake(); err != nil {
				c.Close()
				return
			}
			id, _ := idOf(rawOf(tc.ConnectionState()))
			res, err := s.rcv.Serve(context.Background(), tc, id)
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.res = append(s.res, res)
			s.mu.Unlock()
		}()
	}
}

// last is the outcome of the n-th Serve (from 1), once it has ended.
func (s *server) outcome(n int) (Result, error) {
	s.t.Helper()
	testutil.WaitFor(s.t, fmt.Sprintf("receive attempt %d to end", n), 20*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.errs) >= n
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res[n-1], s.errs[n-1]
}

func rawOf(st tls.ConnectionState) [][]byte {
	var out [][]byte
	for _, c := range st.PeerCertificates {
		out = append(out, c.Raw)
	}
	return out
}

// dial opens a TLS stream to the server as from.
func (s *server) dial(t testing.TB, from peer) net.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", s.ln.Addr().String(), from.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cutConn fails every write after limit bytes and closes the connection,
// like an unplugged cable.
type cutConn struct {
	net.Conn
	left atomic.Int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.left.Add(-int64(len(p))) < 0 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// writeFile makes a file of n pseudo-random bytes from seed.
func writeFile(t testing.TB, name string, n int64, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		for i := 0; i < int(k); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < int(k); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// sameTree fails unless every file and folder under want is under got with
// the same bytes, and got holds nothing else (the staging folder aside).
func sameTree(t testing.TB, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(want, p)
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		seen[rel] = true
		g := filepath.Join(got, rel)
		fi, err := os.Lstat(g)
		if err != nil {
			t.Errorf("missing %s: %v", rel, err)
			return nil
		}
		if d.IsDir() != fi.IsDir() {
			t.Errorf("%s: folder %v, want %v", rel, fi.IsDir(), d.IsDir())
			return nil
		}
		if !d.IsDir() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(g)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: %d bytes differ from the %d sent", rel, len(b), len(a))
			}
		}
		return nil
	})
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if d.Name() == StagingDir {
			return filepath.SkipDir
		}
		if !seen[rel] {
			t.Errorf("unexpected %s in the download folder", rel)
		}
		return nil
	})
}

func sendCfg(t testing.TB) SendConfig {
	c := DefaultSendConfig()
	c.Log = testutil.Logger(t, slog.LevelWarn)
	c.IdleTimeout = 10 * time.Second
	c.ReplyTimeout = 10 * time.Second
	return c
}

func recvCfg(t testing.TB, dir string) ReceiverConfig {
	c := DefaultReceiverConfig(dir)
	c.IdleTimeout = 10 * time.Second
	return c
}

func source(t testing.TB, paths ...string) *Source {
	t.Helper()
	s, err := NewSource(paths, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
