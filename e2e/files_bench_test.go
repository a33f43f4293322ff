//go:build linux

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// BenchmarkSendFileLAN moves one 1 GiB file from one namespace host to
// another with the real binaries (`lanchat send-file`, the recipient
// auto-accepting), and, in the same run between the same two hosts, with
// a plain Go TLS 1.3 io.Copy file → stream → file; it reports both rates
// and their ratio, and the time from starting send-file to the first byte
// of the partial file at the recipient. Both sides' files are on tmpfs
// (/dev/shm), so the disk is not what is measured:
//
//	go test -run '^$' -bench SendFileLAN -benchtime 1x ./e2e/
//
// LANCHAT_BENCH_TRIES sets the tries (3 by default), alternated.
func BenchmarkSendFileLAN(b *testing.B) {
	const size = 1 << 30
	tries := 3
	if v, err := strconv.Atoi(os.Getenv("LANCHAT_BENCH_TRIES")); err == nil && v > 0 {
		tries = v
	}
	shm, err := os.MkdirTemp("/dev/shm", "lanchat-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	src := filepath.Join(shm, "big.bin")
	writeRandomFile(b, src, size)
	dl := filepath.Join(shm, "dl")
	os.Mkdir(dl, 0o755)

	lab := netlab.New(b, 2)
	alice := launchNode(b, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	bob := launchNode(b, lab.Hosts[1], nodeOpts{name: "bob", logLevel: "info",
		args: []string{"--download-dir", dl, "--accept-from", "alice"}})
	for _, n := range []*node{alice, bob} {
		if err := n.waitReady(seeTimeout); err != nil {
			b.Fatal(err)
		}
	}
	waitSees(b, seeTimeout, []*node{alice, bob}, []*node{alice, bob}, "available")
	plain := newPlainTLS(b, lab.Hosts[1], filepath.Join(shm, "plain.bin"))

	var lanchat, baseline, first []time.Duration
	for range tries {
		d := plain.copy(b, lab.Hosts[0], src)
		baseline = append(baseline, d)
		os.Remove(plain.dst)

		d, ttfb := timeSendFile(b, alice, dl, src)
		lanchat = append(lanchat, d)
		first = append(first, ttfb)
		os.Remove(filepath.Join(dl, "big.bin"))
	}
	rate := func(ds []time.Duration) float64 {
		var best float64
		for _, d := range ds {
			best = max(best, float64(size)/d.Seconds()/1e6)
		}
		return best
	}
	b.Logf("lanchat send-file: %v; plain TLS io.Copy: %v; first byte: %v", lanchat, baseline, first)
	b.ReportMetric(rate(lanchat), "lanchat-best-MB/s")
	b.ReportMetric(rate(baseline), "tls-best-MB/s")
	b.ReportMetric(rate(lanchat)/rate(baseline), "ratio-best")
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	b.ReportMetric(median(baseline).Seconds()/median(lanchat).Seconds(), "ratio-median")
	reportMs(b, "first-byte", first)
}

func writeRandomFile(tb testing.TB, path string, size int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for n := 0; n < size; n += len(buf) {
		rand.Read(buf)
		if _, err := f.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
}

// timeSendFile runs send-file from n and returns how long it took, and
// how long until the partial file at the recipient (below dl) held a
// byte, polled every half millisecond.
func timeSendFile(b *testing.B, n *node, dl, path string) (time.Duration, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstAt := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			parts, _ := filepath.Glob(filepath.Join(dl, ".lanchat-partial", "*", "*.part"))
			for _, p := range parts {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
					firstAt <- time.Now()
					return
				}
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	start := time.Now()
	r, err := tryCLI(n.host, lanchatBin(b), "", "--data-dir", n.dataDir, "send-file", "bob", path)
	took := time.Since(start)
	if err != nil || r.code != 0 {
		b.Fatalf("send-file: %v %v", r, err)
	}
	var ttfb time.Duration
	select {
	case at := <-firstAt:
		ttfb = at.Sub(start)
	case <-time.After(time.Second):
		b.Log("the partial file was not seen")
	}
	return took, ttfb
}

// plainTLS is the baseline: a TLS 1.3 listener on a lab host that copies
// one stream into a file per connection.
type plainTLS struct {
	ln   net.Listener
	dst  string
	cfg  *tls.Config
	done chan error
}

func newPlainTLS(b *testing.B, h *netlab.Host, dst string) *plainTLS {
	b.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		b.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ln, err := h.Listen("tcp", net.JoinHostPort(h.Addr.String(), "0"))
	if err != nil {
		b.Fatal(err)
	}
	p := &plainTLS{ln: ln, dst: dst, done: make(chan error, 1),
		cfg: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.done <- p.receive(tls.Server(c, p.cfg))
		}
	}()
	return p
}

func (p *plainTLS) receive(c *tls.Conn) error {
	defer c.Close()
	f, err := os.Create(p.dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, c); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copy sends the file at src from host h and returns the time until the
// receiving side has closed its file.
func (p *plainTLS) copy(b *testing.B, h *netlab.Host, src string) time.Duration {
	b.Helper()
	start := time.Now()
	raw, err := h.Dial(context.Background(), "tcp", p.ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(c, f); err != nil {
		b.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-p.done; err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	c.Close()
	return d
}
