package filexfer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/testutil"
)

// benchDir is where benchmark files live: LANCHAT_BENCH_DIR (e.g.
// /dev/shm, to take the disk out of the figure) or the test's temp dir.
func benchDir(b *testing.B) string {
	if d := os.Getenv("LANCHAT_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "filexfer-bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// plainCopy is the baseline: the same file, read, sent over a TLS 1.3
// stream on the same loopback with the same certificates, and written to
// a file on the other side with io.Copy; no hashing, no journal, no sync.
func plainCopy(b *testing.B, srcName, dstName string) time.Duration {
	srv, cli := newPeer(b), newPeer(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, srv.tlsConfig())
		defer tc.Close()
		f, err := os.Create(dstName)
		if err != nil {
			return
		}
		defer f.Close()
		io.Copy(f, tc)
	}()
	start := time.Now()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli.tlsConfig())
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(srcName)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(c, f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	c.Close()
	wg.Wait()
	return time.Since(start)
}

// BenchmarkThroughput1GiB sends one 1 GiB file with filexfer and with a
// plain TLS io.Copy in the same run, and reports both rates and their
// ratio (target ≥ 0.8).
func BenchmarkThroughput1GiB(b *testing.B) {
	const size = 1 << 30
	dir := benchDir(b)
	src := filepath.Join(dir, "src", "big.bin")
	writeFile(b, src, size, 1)
	var plain, ours time.Duration
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(dir, "plain"+strconv.Itoa(i))
		plain += plainCopy(b, src, dst)
		os.Remove(dst)

		dl := filepath.Join(dir, "dl"+strconv.Itoa(i))
		srv := newServer(b, DefaultReceiverConfig(dl))
		s := source(b, src)
		start := time.Now()
		if _, err := Send(context.Background(), srv.dial(b, newPeer(b)), s, DefaultSendConfig()); err != nil {
			b.Fatal(err)
		}
		if _, err := srv.outcome(1); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		os.RemoveAll(dl)
	}
	n := float64(b.N) * size
	b.ReportMetric(n/plain.Seconds()/1e6, "plain-MB/s")
	b.ReportMetric(n/ours.Seconds()/1e6, "filexfer-MB/s")
	b.ReportMetric(plain.Seconds()/ours.Seconds(), "ratio")
}

// BenchmarkSmallFiles sends 10,000 files of 4 KiB in one folder tree
// (target ≥ 5,000 files/s).
func BenchmarkSmallFiles(b *testing.B) {
	const n = 10000
	dir := benchDir(b)
	tree := filepath.Join(dir, "src", "small")
	for i := range n {
		writeFile(b, filepath.Join(tree, strconv.Itoa(i%100), strconv.Itoa(i)), 4096, uint64(i))
	}
	var took, plain, durable time.Duration
	buf := make([]byte, 4096)
	// The baselines: the same files created and written locally, in the
	// same folder layout, with nothing else; and the same with one
	// syncfs at the end, what the disk takes to make them durable at the
	// least.
	local := func(pd string, sync bool) time.Duration {
		start := time.Now()
		for j := range n {
			sub := filepath.Join(pd, strconv.Itoa(j%100))
			if j < 100 {
				os.MkdirAll(sub, 0o755)
			}
			if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(j)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if sync {
			syncDir(b, pd)
		}
		return time.Since(start)
	}
	ours := func(dl string) time.Duration {
		srv := newServer(b, DefaultReceiverConfig(dl))
		start := time.Now()
		s, err := NewSource([]string{tree}, 1_000_000)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if _, err := Send(context.Background(), srv.dial(b, newPeer(b)), s, DefaultSendConfig()); err != nil {
			b.Fatal(err)
		}
		if _, err := srv.outcome(1); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	syncDir(b, dir)
	for i := 0; b.Loop(); i++ {
		// Each run starts on a file system with nothing left to write,
		// the deletions of the one before included; the order turns, as
		// a run right after a deletion of 10,000 files is slower on ext4.
		for k := range 3 {
			d := filepath.Join(dir, "run"+strconv.Itoa(i)+strconv.Itoa(k))
			switch (i + k) % 3 {
			case 0:
				plain += local(d, false)
			case 1:
				durable += local(d, true)
			case 2:
				took += ours(d)
			}
			os.RemoveAll(d)
			syncDir(b, dir)
		}
	}
	b.ReportMetric(float64(b.N)*n/took.Seconds(), "files/s")
	b.ReportMetric(float64(b.N)*n/plain.Seconds(), "plain-create-files/s")
	b.ReportMetric(float64(b.N)*n/durable.Seconds(), "plain+syncfs-files/s")
	b.ReportMetric(plain.Seconds()/took.Seconds(), "ratio-to-plain")
}

// syncDir syncs the file system dir is on (syncfs where there is one).
func syncDir(b *testing.B, dir string) {
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := syncFS(d); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		b.Fatal(err)
	}
}

// BenchmarkFirstByte10GiB measures from the start of Send to the first
// byte written at the recipient for a 10 GiB (sparse) file: no hashing
// pass may come first (target ≤ 50 ms).
func BenchmarkFirstByte10GiB(b *testing.B) {
	dir := benchDir(b)
	src := filepath.Join(dir, "huge.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(10 << 30)
	f.Close()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		var first atomic.Int64
		var start time.Time
		ctx, cancel := context.WithCancel(context.Background())
		cfg := DefaultReceiverConfig(filepath.Join(dir, "dl"+strconv.Itoa(i)))
		cfg.freeSpace = func() (uint64, error) { return 1 << 40, nil }
		cfg.failWrite = func(uint32, int64) error {
			if first.CompareAndSwap(0, int64(time.Since(start))) {
				cancel()
			}
			return nil
		}
		srv := newServer(b, cfg)
		conn := srv.dial(b, newPeer(b))
		start = time.Now()
		s, err := NewSource([]string{src}, 10)
		if err != nil {
			b.Fatal(err)
		}
		Send(ctx, conn, s, DefaultSendConfig())
		s.Close()
		srv.outcome(1)
		total += time.Duration(first.Load())
		cancel()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-first-byte")
}

// BenchmarkResumeFirstByte1GiB cuts a 1 GiB transfer at half way, then
// measures from the second Send's start to the first new byte written at
// the recipient (target ≤ 100 ms): the resume reads nothing first.
func BenchmarkResumeFirstByte1GiB(b *testing.B) {
	const size = 1 << 30
	dir := benchDir(b)
	src := filepath.Join(dir, "src.bin")
	writeFile(b, src, size, 5)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		var first atomic.Int64
		var start time.Time
		var second atomic.Bool
		cfg := DefaultReceiverConfig(filepath.Join(dir, "dl"+strconv.Itoa(i)))
		cfg.failWrite = func(uint32, int64) error {
			if second.Load() {
				first.CompareAndSwap(0, int64(time.Since(start)))
			}
			return nil
		}
		srv := newServer(b, cfg)
		me := newPeer(b)
		s := source(b, src)
		cut := &cutConn{Conn: srv.dial(b, me)}
		cut.left.Store(size / 2)
		Send(context.Background(), cut, s, DefaultSendConfig())
		srv.outcome(1)
		conn := srv.dial(b, me)
		second.Store(true)
		start = time.Now()
		if _, err := Send(context.Background(), conn, s, DefaultSendConfig()); err != nil {
			b.Fatal(err)
		}
		srv.outcome(2)
		total += time.Duration(first.Load())
		os.RemoveAll(cfg.Dir)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-first-new-byte")
}

// BenchmarkMemory4GiB sends a 4 GiB (sparse) file and reports the most
// memory the Go runtime held from the system during it, sender and
// recipient together in this one process (target: ≤ 64 MB each side).
func BenchmarkMemory4GiB(b *testing.B) {
	dir := benchDir(b)
	src := filepath.Join(dir, "huge.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(4 << 30)
	f.Close()
	var peak uint64
	for i := 0; b.Loop(); i++ {
		runtime.GC()
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ms runtime.MemStats
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.Sys-ms.HeapReleased)
				}
			}
		}()
		cfg := DefaultReceiverConfig(filepath.Join(dir, "dl"+strconv.Itoa(i)))
		srv := newServer(b, cfg)
		if _, err := Send(context.Background(), srv.dial(b, newPeer(b)), source(b, src), DefaultSendConfig()); err != nil {
			b.Fatal(err)
		}
		srv.outcome(1)
		close(done)
		wg.Wait()
		os.RemoveAll(cfg.Dir)
	}
	b.ReportMetric(float64(peak)/1e6, "peak-MB-both-sides")
}

// BenchmarkParallelTLS1GiB asks whether a large file would move faster
// over several streams than over one: a plain TLS 1.3 copy of one 1 GiB
// file over 1, 2 and 4 loopback connections at once, each carrying its
// own byte range from a ReadAt of the source to a WriteAt of the
// destination, the counts alternated in each round. It reports each
// count's best rate and the ratio of 2 and 4 streams to 1 (the ceiling
// of what several filexfer streams could gain here; filexfer itself
// uses one):
//
//	go test -run '^$' -bench ParallelTLS -benchtime 3x ./filexfer/
func BenchmarkParallelTLS1GiB(b *testing.B) {
	const size = 1 << 30
	dir := benchDir(b)
	src := filepath.Join(dir, "big.bin")
	writeFile(b, src, size, 7)
	srv, cli := newPeer(b), newPeer(b)
	counts := []int{1, 2, 4}
	best := map[int]time.Duration{}
	for i := 0; b.Loop(); i++ {
		for k := range counts {
			n := counts[(i+k)%len(counts)]
			dst := filepath.Join(dir, "dst"+strconv.Itoa(n))
			d := parallelCopy(b, srv.tlsConfig(), cli.tlsConfig(), src, dst, size, n)
			if best[n] == 0 || d < best[n] {
				best[n] = d
			}
			os.Remove(dst)
		}
	}
	for _, n := range counts {
		b.ReportMetric(size/best[n].Seconds()/1e6, strconv.Itoa(n)+"-streams-MB/s")
	}
	b.ReportMetric(best[1].Seconds()/best[2].Seconds(), "ratio-2-to-1")
	b.ReportMetric(best[1].Seconds()/best[4].Seconds(), "ratio-4-to-1")
}

// parallelCopy copies size bytes of src to dst over n TLS connections on
// loopback (testutil.ParallelTLSCopy).
func parallelCopy(b *testing.B, srvCfg, cliCfg *tls.Config, src, dst string, size int64, n int) time.Duration {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	d, err := testutil.ParallelTLSCopy(ln, (&net.Dialer{}).DialContext, srvCfg, cliCfg, src, dst, size, n)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
