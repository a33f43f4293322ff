package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lanchat/node/api"
)

// Benchmarks of the durable message path between two nodes in one
// process on loopback, each with its own SQLite history: everything but
// the LAN itself. `make bench` runs them; BENCHMARKS.md has the figures.

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// benchSync is the --sync mode of benchmark nodes: LANCHAT_BENCH_SYNC=full
// measures the power-cut-proof mode.
func benchSync() string { return os.Getenv("LANCHAT_BENCH_SYNC") }

func benchPair(b *testing.B, rate float64) (a, c *running) {
	a = startNode(b, Config{DataDir: b.TempDir(), Name: "alice", Logger: quiet(), PeerRate: rate, Sync: benchSync()})
	c = startNode(b, Config{DataDir: b.TempDir(), Name: "bob", Logger: quiet(), PeerRate: rate, Sync: benchSync(), Join: []string{a.gossip()}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p := a.peers(); len(p) == 1 && p[0].Online() {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("nodes did not meet")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Colleagues who have talked: bob has written to alice, so what she
	// sends him is under a correspondent's storage quota, not a
	// stranger's 16 MiB (message/chat/quota.go), however long the run.
	deadline = time.Now().Add(10 * time.Second)
	for {
		res, err := c.n.Send(context.Background(), api.SendRequest{To: "alice", Text: "hi alice"})
		if err == nil && res.State == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("bob's first message to alice: %+v %v", res, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a, c
}

// BenchmarkPersistedSend: Send → stored on both sides → acknowledged →
// recorded delivered, one message at a time over an open stream.
func BenchmarkPersistedSend(b *testing.B) {
	a, _ := benchPair(b, -1)
	ctx := context.Background()
	if _, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: "warm-up"}); err != nil { // opens the stream
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		res, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: fmt.Sprintf("message %d", i)})
		if err != nil || res.State != "delivered" {
			b.Fatalf("send %d: %+v %v", i, res, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkSustained: 512 concurrent senders on alice (scripts, a busy
// room), everything persisted on both sides; reports messages per second
// end to end, each counted when Send returned it delivered (stored by
// bob's node).
func BenchmarkSustained(b *testing.B) {
	a, c := benchPair(b, -1)
	ctx := context.Background()
	const senders = 512
	n := max(b.N, 20000)
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0 := processCPU(b)
	start := time.Now()
	b.ResetTimer()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				res, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: fmt.Sprintf("bulk %d", i)})
				if err != nil || res.State != "delivered" {
					b.Errorf("send %d: %+v %v", i, res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
	// Both nodes are this process: its CPU time per message is what the
	// pair spends, sender and receiver together.
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/msg")
	if got := len(c.messages()); got != n {
		b.Fatalf("bob has %d messages, want %d", got, n)
	}
}

// BenchmarkQueuedBacklog: 10,000 messages queued for bob while he is
// away; time from his node being up again to alice's outbox being empty.
func BenchmarkQueuedBacklog(b *testing.B) {

	const backlog = 10000
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		a, c := benchPair(b, -1)
		bobDir := c.dir
		c.stop()
		deadline := time.Now().Add(10 * time.Second)
		for p := a.peers(); p[0].Online(); p = a.peers() {
			if time.Now().After(deadline) {
				b.Fatal("bob still online")
			}
			time.Sleep(10 * time.Millisecond)
		}
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < backlog; i += 16 {
					if res, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: fmt.Sprintf("backlog %d", i)}); err != nil || res.State != "queued" {
						b.Errorf("queue %d: %+v %v", i, res, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StartTimer()
		t0 := time.Now()
		c2 := startNode(b, Config{DataDir: bobDir, Name: "bob", Logger: quiet(), PeerRate: -1, Sync: benchSync(), Join: []string{a.gossip()}})
		// Delivered means stored by bob's node: count what bob received.
		var first time.Duration
		for n := len(c2.messages()); n < backlog; n = len(c2.messages()) {
			if n > 0 && first == 0 {
				first = time.Since(t0)
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("backlog not delivered in a minute: bob has %d", len(c2.messages()))
			}
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(t0)
		b.StopTimer()
		for {
			ob, _ := a.n.Outbox(ctx)
			if len(ob) == 0 {
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("alice's outbox not empty: %+v", ob)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := len(c2.messages()); got != backlog {
			b.Fatalf("bob got %d, want %d", got, backlog)
		}
		b.ReportMetric(float64(el.Milliseconds()), "backlog-ms")
		b.ReportMetric(float64(first.Milliseconds()), "first-ms")
		a.stop()
		c2.stop()
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
