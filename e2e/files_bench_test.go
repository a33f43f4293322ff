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
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lanchat/internal/netlab"
	"lanchat/internal/testutil"
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
	tries := fileBenchTries()
	shm := shmDir(b)
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

		d, ttfb := timeSendFile(b, alice, "bob", dl, src)
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
	b.ReportMetric(median(baseline).Seconds()/median(lanchat).Seconds(), "ratio-median")
	reportMs(b, "first-byte", first)
}

// BenchmarkSendFileLANSmall moves 10,000 files of 4 KiB in 100 folders
// from one namespace host to two others with the real binaries
// (`lanchat send-file`, timed from starting the command to its exit 0):
// one recipient's download folder on tmpfs, the other's on the disk (the
// e2e temp folder). In the same run, on the same file systems, the
// baselines: the same files created and written by this process, and the
// same with one syncfs at the end. The source tree is on tmpfs.
//
//	go test -run '^$' -bench SendFileLANSmall -benchtime 1x ./e2e/
func BenchmarkSendFileLANSmall(b *testing.B) {
	const n = 10000
	tries := fileBenchTries()
	shm := shmDir(b)
	tree := filepath.Join(shm, "small")
	buf := make([]byte, 4096)
	for i := range n {
		d := filepath.Join(tree, strconv.Itoa(i%100))
		os.MkdirAll(d, 0o755)
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(d, strconv.Itoa(i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	disk := newDataDir(b)
	dls := map[string]string{"bob": filepath.Join(shm, "dl"), "carol": filepath.Join(disk, "dl")}

	lab := netlab.New(b, 3)
	alice := launchNode(b, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	bob := launchNode(b, lab.Hosts[1], nodeOpts{name: "bob", logLevel: "info",
		args: []string{"--download-dir", dls["bob"], "--accept-from", "alice"}})
	carol := launchNode(b, lab.Hosts[2], nodeOpts{name: "carol", logLevel: "info",
		args: []string{"--download-dir", dls["carol"], "--accept-from", "alice"}})
	all := []*node{alice, bob, carol}
	for _, nd := range all {
		if err := nd.waitReady(seeTimeout); err != nil {
			b.Fatal(err)
		}
	}
	waitSees(b, seeTimeout, all, all, "available")

	local := func(dir string, durable bool) time.Duration {
		start := time.Now()
		for j := range n {
			sub := filepath.Join(dir, strconv.Itoa(j%100))
			if j < 100 {
				os.MkdirAll(sub, 0o755)
			}
			if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(j)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if durable {
			syncfsOf(b, dir)
		}
		return time.Since(start)
	}
	for _, to := range []string{"bob", "carol"} {
		dl := dls[to]
		var ours, plain, durable []time.Duration
		for i := range tries {
			// The order turns: on ext4 a run just after 10,000 files
			// were deleted is slower. Each starts with nothing to write.
			for k := range 3 {
				syncfsOf(b, shm)
				syncfsOf(b, disk)
				switch (i + k) % 3 {
				case 0:
					d := filepath.Join(filepath.Dir(dl), "plain")
					plain = append(plain, local(d, false))
					os.RemoveAll(d)
				case 1:
					d := filepath.Join(filepath.Dir(dl), "plain")
					durable = append(durable, local(d, true))
					os.RemoveAll(d)
				case 2:
					d, _ := timeSendFile(b, alice, to, dl, tree)
					ours = append(ours, d)
					got, _ := filepath.Glob(filepath.Join(dl, "small", "*", "*"))
					if len(got) != n {
						b.Fatalf("%s holds %d files, want %d", to, len(got), n)
					}
					os.RemoveAll(filepath.Join(dl, "small"))
				}
			}
		}
		where := map[string]string{"bob": "tmpfs", "carol": "disk"}[to]
		b.Logf("%s: lanchat send-file %v; local create+write %v; the same + syncfs %v", where, ours, plain, durable)
		rate := func(ds []time.Duration) float64 { return n / median(ds).Seconds() }
		b.ReportMetric(rate(ours), where+"-files/s")
		b.ReportMetric(rate(plain), where+"-plain-files/s")
		b.ReportMetric(rate(durable), where+"-plain+syncfs-files/s")
		b.ReportMetric(rate(ours)/rate(plain), where+"-ratio")
	}
}

// BenchmarkSendFileLANMemory moves one 4 GiB file (sparse, on tmpfs) from
// one namespace host to another with the real binaries, into a download
// folder on tmpfs, and reports the peak resident memory (VmHWM) of both
// nodes' processes: the sender's and the recipient's `lanchat run`
// (target ≤ 64 MB each), against the same nodes' peak before the
// transfer.
//
//	go test -run '^$' -bench SendFileLANMemory -benchtime 1x ./e2e/
func BenchmarkSendFileLANMemory(b *testing.B) {
	const size = 4 << 30
	shm := shmDir(b)
	src := filepath.Join(shm, "huge.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	dl := filepath.Join(shm, "dl")
	lab := netlab.New(b, 2)
	alice := launchNode(b, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	bob := launchNode(b, lab.Hosts[1], nodeOpts{name: "bob", logLevel: "info",
		args: []string{"--download-dir", dl, "--accept-from", "alice"}})
	for _, nd := range []*node{alice, bob} {
		if err := nd.waitReady(seeTimeout); err != nil {
			b.Fatal(err)
		}
	}
	waitSees(b, seeTimeout, []*node{alice, bob}, []*node{alice, bob}, "available")
	before := []int64{vmHWM(b, alice), vmHWM(b, bob)}
	took, _ := timeSendFile(b, alice, "bob", dl, src)
	fi, err := os.Stat(filepath.Join(dl, "huge.bin"))
	if err != nil || fi.Size() != size {
		b.Fatalf("the recipient holds %v, %v", fi, err)
	}
	after := []int64{vmHWM(b, alice), vmHWM(b, bob)}
	b.Logf("4 GiB in %v (%.0f MB/s); VmHWM before: sender %d kB, recipient %d kB; after: %d kB, %d kB",
		took, size/took.Seconds()/1e6, before[0], before[1], after[0], after[1])
	b.ReportMetric(float64(after[0])/1000, "sender-VmHWM-MB")
	b.ReportMetric(float64(after[1])/1000, "recipient-VmHWM-MB")
	b.ReportMetric(float64(before[0])/1000, "sender-idle-VmHWM-MB")
	b.ReportMetric(float64(before[1])/1000, "recipient-idle-VmHWM-MB")
}

// vmHWM reads the peak resident set size of n's process, in kB.
func vmHWM(b *testing.B, n *node) int64 {
	b.Helper()
	st, err := os.ReadFile("/proc/" + strconv.Itoa(n.cmd.Process.Pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// syncfsOf syncs the file system dir is on.
func syncfsOf(b *testing.B, dir string) {
	b.Helper()
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		b.Fatal(err)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
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
func timeSendFile(b *testing.B, n *node, to, dl, path string) (time.Duration, time.Duration) {
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
	r, err := tryCLI(n.host, lanchatBin(b), "", "--data-dir", n.dataDir, "send-file", to, path)
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

// fileBenchTries is LANCHAT_BENCH_TRIES, the tries of a LAN file benchmark
// (3 by default).
func fileBenchTries() int {
	if v, err := strconv.Atoi(os.Getenv("LANCHAT_BENCH_TRIES")); err == nil && v > 0 {
		return v
	}
	return 3
}

// shmDir is a directory on tmpfs for a benchmark's files, removed after
// it, so the disk stays out of what is measured.
func shmDir(b *testing.B) string {
	shm, err := os.MkdirTemp("/dev/shm", "lanchat-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	return shm
}

// BenchmarkSendFileLANStreams asks whether a large file would move faster
// between two namespace hosts over several streams than over one: a plain
// TLS 1.3 copy of one 1 GiB file over 1, 2 and 4 connections at once,
// each carrying its own byte range (ReadAt of the source, WriteAt of the
// destination, both on tmpfs), the counts alternated in each try. It
// reports each count's best and median rate, the CPU time this process
// (both ends) spent per GiB, and the ratios of 2 and 4 streams to 1: the
// most several filexfer streams could gain on this link and these cores
// (filexfer uses one). On a shared machine the CPU per GiB is the steady
// figure: more streams take a larger share of cores others also want,
// which is not a gain a user would see on an idle pair of machines.
//
//	go test -run '^$' -bench SendFileLANStreams -benchtime 1x ./e2e/
func BenchmarkSendFileLANStreams(b *testing.B) {
	const size = 1 << 30
	tries := fileBenchTries()
	shm := shmDir(b)
	src := filepath.Join(shm, "big.bin")
	writeRandomFile(b, src, size)
	lab := netlab.New(b, 2)
	counts := []int{1, 2, 4}
	took := map[int][]time.Duration{}
	cpu := map[int]time.Duration{}
	for i := range tries {
		for k := range counts {
			n := counts[(i+k)%len(counts)]
			dst := filepath.Join(shm, "dst")
			c0 := processCPU()
			took[n] = append(took[n], parallelTLSCopy(b, lab.Hosts[0], lab.Hosts[1], src, dst, size, n))
			cpu[n] += processCPU() - c0
			os.Remove(dst)
		}
	}
	best := map[int]time.Duration{}
	for _, n := range counts {
		best[n] = slices.Min(took[n])
		b.Logf("%d stream(s): %v", n, took[n])
		b.ReportMetric(size/best[n].Seconds()/1e6, strconv.Itoa(n)+"-streams-best-MB/s")
		b.ReportMetric(size/median(took[n]).Seconds()/1e6, strconv.Itoa(n)+"-streams-median-MB/s")
		b.ReportMetric(cpu[n].Seconds()/float64(tries), strconv.Itoa(n)+"-streams-cpu-s/GiB")
	}
	b.ReportMetric(best[1].Seconds()/best[2].Seconds(), "ratio-best-2-to-1")
	b.ReportMetric(best[1].Seconds()/best[4].Seconds(), "ratio-best-4-to-1")
	b.ReportMetric(median(took[1]).Seconds()/median(took[2]).Seconds(), "ratio-median-2-to-1")
	b.ReportMetric(median(took[1]).Seconds()/median(took[4]).Seconds(), "ratio-median-4-to-1")
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallelTLSCopy copies size bytes of src (read on host from) to dst
// (written on host to) over n TLS 1.3 connections (testutil.ParallelTLSCopy).
func parallelTLSCopy(b *testing.B, from, to *netlab.Host, src, dst string, size int64, n int) time.Duration {
	b.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		b.Fatal(err)
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13}
	cliCfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	ln, err := to.Listen("tcp", net.JoinHostPort(to.Addr.String(), "0"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	d, err := testutil.ParallelTLSCopy(ln, from.Dial, srvCfg, cliCfg, src, dst, size, n)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
