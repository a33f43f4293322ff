package store

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/mesh"
	"lanchat/message"
)

// The CPU cost of a delivered message, both nodes together, without the
// node package: two message.Services on one TLS stream over 127.0.0.1,
// each with its own history (synchronous NORMAL, as a node runs it). The
// sender does per message what a node does (node/chat.go, node/outbox.go):
// seal, store as queued (AddOutgoing, overlapping the send), send in
// chunks of 256 frames with up to 4 chunks awaiting their acks, then
// record the deliveries, up to 512 in one ApplyReceipts call. The
// receiver verifies what a stream read in one go together and stores it in
// one transaction (DeliverBatch → AddReceivedBatch) before acknowledging
// it. Every run prints written-KB/msg too (files and sockets, from
// /proc/self/io) and the messages a stream took in one go.
//
//	go test -run '^$' -bench 'PairCPU' -benchtime 30000x ./message/store/
//
// cpu-µs/msg is the process's CPU time (user + system, getrusage) per
// delivered message: on a shared machine the steadier figure, and the one
// that bounds what two nodes sharing 2 cores can do (2e6 / cpu-µs/msg
// messages a second).

// pairSenders is how many concurrent Send calls the sender runs, each
// waiting for its message to be delivered, as node's BenchmarkSustained.
const pairSenders = 512

// pairNode is one side of the pair: an identity, a history, a Service.
type pairNode struct {
	id  *mesh.Identity
	st  *Store
	svc *message.Service
}

func newPairNode(b *testing.B) *pairNode {
	b.Helper()
	dir := b.TempDir()
	id, err := mesh.LoadOrCreateIdentity(dir)
	if err != nil {
		b.Fatal(err)
	}
	opt := DefaultOptions()
	opt.Synchronous = "NORMAL"
	st, err := Open(filepath.Join(dir, "history.db"), opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return &pairNode{id: id, st: st}
}

// pairStream is an accepted TLS connection as message.Stream.
type pairStream struct {
	*tls.Conn
	peer string
}

func (s pairStream) PeerID() string { return s.peer }

// listenPair serves message streams for svc on 127.0.0.1:0 with a
// certificate of id's key, the way mesh does, and returns the address.
func listenPair(b *testing.B, id *mesh.Identity, svc *message.Service) string {
	b.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public(), id.Key)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: id.Key}},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{message.ALPN},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); svc.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c := tls.Server(raw, cfg)
				if err := c.Handshake(); err != nil {
					raw.Close()
					return
				}
				certs := c.ConnectionState().PeerCertificates
				pub, ok := certs[0].PublicKey.(ed25519.PublicKey)
				if !ok {
					c.Close()
					return
				}
				svc.HandleStream(pairStream{c, mesh.IDFromPublicKey(pub)})
			})
		}
	})
	return ln.Addr().String()
}

// newPair starts the receiver (bob) and the sender (alice) and opens
// alice's stream to bob.
func newPair(b *testing.B, recvBatches, recvN *atomic.Int64) (alice, bob *pairNode) {
	b.Helper()
	alice, bob = newPairNode(b), newPairNode(b)

	cfg := message.DefaultConfig()
	cfg.Key = bob.id.Key
	cfg.DeliverBatch = func(ctx context.Context, envs []*message.Envelope) []error {
		errs := make([]error, len(envs))
		recvBatches.Add(1)
		recvN.Add(int64(len(envs)))
		if _, err := bob.st.AddReceivedBatch(ctx, envs); err != nil {
			for i := range errs {
				errs[i] = err
			}
		}
		return errs
	}
	bob.svc = message.New(cfg)
	addr := listenPair(b, bob.id, bob.svc)

	d, err := mesh.NewDialer(alice.id)
	if err != nil {
		b.Fatal(err)
	}
	cfg = message.DefaultConfig()
	cfg.Key = alice.id.Key
	cfg.Dial = func(ctx context.Context, peer, proto string) (message.Stream, error) {
		return d.DialAddr(ctx, addr, peer, proto)
	}
	alice.svc = message.New(cfg)
	b.Cleanup(func() { alice.svc.Close() })
	return alice, bob
}

// pairItem is a message on its way through the sender's outbox.
type pairItem struct {
	env       *message.Envelope
	stored    chan error    // AddOutgoing's result
	delivered chan struct{} // closed when acknowledged
}

// pairOutbox is node/outbox.go's delivery loop, reduced to one online
// peer: chunks of 256 written in order, up to 4 awaiting acks, and the
// deliveries recorded in the background, many per transaction.
type pairOutbox struct {
	alice *pairNode
	to    string
	queue chan *pairItem
	done  chan *pairItem // acknowledged, to be recorded
}

func (o *pairOutbox) run(ctx context.Context, b *testing.B) {
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var chunk []*pairItem
		select {
		case it := <-o.queue:
			chunk = append(chunk, it)
		case <-ctx.Done():
			return
		}
	more:
		for len(chunk) < 256 {
			select {
			case it := <-o.queue:
				chunk = append(chunk, it)
			default:
				break more
			}
		}
		sem <- struct{}{}
		written := make(chan struct{})
		wg.Go(func() {
			defer func() { <-sem }()
			q := make([]message.Queued, len(chunk))
			for i, it := range chunk {
				q[i] = message.Queued{ID: it.env.ID, Sealed: it.env.Sealed()}
			}
			errs := o.alice.svc.SendBatch(ctx, o.to, q, func(bool) { close(written) })
			for i, it := range chunk {
				if errs[i] != nil {
					b.Errorf("send: %v", errs[i])
					continue
				}
				o.done <- it // before delivered: the benchmark closes done after the last
				close(it.delivered)
			}
		})
		<-written
	}
}

// record stores deliveries as node/outbox.go's record should: whatever
// arrived within 5 ms, up to 512, in one ApplyReceipts call once their
// AddOutgoing calls have returned.
func (o *pairOutbox) record(b *testing.B) {
	for it := range o.done {
		batch := []*pairItem{it}
		linger := time.NewTimer(5 * time.Millisecond)
	more:
		for len(batch) < 512 {
			select {
			case it, ok := <-o.done:
				if !ok {
					break more
				}
				batch = append(batch, it)
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		ids := make([]string, 0, len(batch))
		for _, it := range batch {
			if err := <-it.stored; err == nil {
				ids = append(ids, it.env.ID)
			}
		}
		if changed, err := o.alice.st.ApplyReceipts(context.Background(), o.to, ids, Delivered); err != nil || len(changed) != len(ids) {
			b.Errorf("recorded %d of %d deliveries: %v", len(changed), len(ids), err)
		}
	}
}

func BenchmarkPairCPU(b *testing.B) {
	var recvBatches, recvN atomic.Int64 // DeliverBatch calls and their messages
	alice, bob := newPair(b, &recvBatches, &recvN)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := message.NewClock(nil)
	seal := func(body string) *message.Envelope {
		env := &message.Envelope{AuthorName: "alice", To: bob.id.ID, Time: clock.Now(), Kind: message.KindText, Body: body}
		if _, err := message.Seal(env, alice.id.Key); err != nil {
			b.Fatal(err)
		}
		return env
	}
	// Warm up: the stream is open and both histories have a message.
	if err := alice.svc.SendEnvelope(ctx, seal("warm up").Sealed(), nil); err != nil {
		b.Fatal(err)
	}
	o := &pairOutbox{alice: alice, to: bob.id.ID, queue: make(chan *pairItem, pairSenders), done: make(chan *pairItem, 8192)}
	var bg sync.WaitGroup
	bg.Go(func() { o.run(ctx, b) })
	bg.Go(func() { o.record(b) })

	n := b.N
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	m := startMeter()
	w0 := wchar()
	for range pairSenders {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				it := &pairItem{env: seal(fmt.Sprintf("bulk %d", i)), stored: make(chan error, 1), delivered: make(chan struct{})}
				o.queue <- it
				err := alice.st.AddOutgoing(ctx, it.env)
				it.stored <- err
				if err != nil {
					b.Error(err)
					return
				}
				<-it.delivered
			}
		})
	}
	wg.Wait()
	cancel()
	close(o.done)
	bg.Wait()
	m.report(b, n)
	b.ReportMetric(float64(wchar()-w0)/1024/float64(n), "written-KB/msg")
	b.ReportMetric(float64(recvN.Load())/float64(recvBatches.Load()), "msgs/recv-batch")
	b.StopTimer()
	if got, err := bob.st.Count(context.Background()); err != nil || got != n+1 {
		b.Fatalf("bob has %d messages (%v), want %d", got, err, n+1)
	}
}

// wchar is how many bytes this process has written (/proc/self/io): to
// files and sockets alike.
func wchar() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkPairCPUBreakdown measures the parts of BenchmarkPairCPU's cost
// one after another, each as process CPU time per message: sealing
// (signing), opening what a stream received (verifying, with a Verifier
// as the receiving Service uses, and with message.Open for comparison),
// the sender's history (AddOutgoing from 512 concurrent callers, then
// ApplyReceipts for the deliveries, 512 a call) and the receiver's
// (AddReceivedBatch, 80 a call, about what a stream reads in one go).
//
//	go test -run '^$' -bench 'PairCPUBreakdown' -benchtime 20000x ./message/store/
func BenchmarkPairCPUBreakdown(b *testing.B) {
	ctx := context.Background()
	alice, bob := newPairNode(b), newPairNode(b)
	clock := message.NewClock(nil)
	n := b.N
	envs := make([]*message.Envelope, n)
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n) }
	b.ResetTimer()

	cpu := cpuTime()
	for i := range envs {
		envs[i] = &message.Envelope{AuthorName: "alice", To: bob.id.ID, Time: clock.Now(), Kind: message.KindText, Body: fmt.Sprintf("bulk %d", i+1)}
		if _, err := message.Seal(envs[i], alice.id.Key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(per(cpuTime()-cpu), "sign-µs/msg")

	const recvBatch = 80
	payloads := make([][]byte, n)
	for i, e := range envs {
		payloads[i] = e.Sealed()
	}
	v := message.NewVerifier()
	received := make([]*message.Envelope, 0, n)
	cpu = cpuTime()
	for chunk := range chunks(payloads, recvBatch) {
		got, errs := v.OpenBatch(chunk)
		for i, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
			received = append(received, got[i])
		}
	}
	b.ReportMetric(per(cpuTime()-cpu), "verify-µs/msg")
	cpu = cpuTime()
	for _, p := range payloads {
		if _, err := message.Open(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(per(cpuTime()-cpu), "verify-Open-µs/msg")

	cpu = cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range pairSenders {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := alice.st.AddOutgoing(ctx, envs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for chunk := range chunks(envs, 512) {
		ids := make([]string, len(chunk))
		for i, e := range chunk {
			ids[i] = e.ID
		}
		if _, err := alice.st.ApplyReceipts(ctx, bob.id.ID, ids, Delivered); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(per(cpuTime()-cpu), "store-send-µs/msg")

	cpu = cpuTime()
	for chunk := range chunks(received, recvBatch) {
		if _, err := bob.st.AddReceivedBatch(ctx, chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(per(cpuTime()-cpu), "store-recv-µs/msg")
}
