//go:build linux

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// The speed targets, measured on the namespace LAN with 3 and 10 nodes:
//
//	go test -run '^$' -bench . ./e2e/
//
// Each benchmark does its tries once, whatever b.N, and reports
// milliseconds (or MiB, CPU %) with b.ReportMetric; ns/op is meaningless.
// Times are taken when the observers printed their presence events (each
// line is stamped when read), so polling does not blur them.

// benchTries is how many times each measurement is repeated.
const benchTries = 10

// benchSizes are the LAN sizes measured.
func benchSizes() []int { return []int{3, 10} }

// BenchmarkStartListed: a node starts (fresh data directory) → every other
// node has printed it as available.
func BenchmarkStartListed(b *testing.B) {
	for _, size := range benchSizes() {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			steady, h := benchLAN(b, size)
			var listed []time.Duration
			for i := range benchTries {
				n, d := startSeen(b, h, steady, fmt.Sprintf("new%d", i))
				listed = append(listed, d)
				stopSeen(b, n, steady)
			}
			reportMs(b, "listed", listed)
		})
	}
}

// BenchmarkLeaveSeen: SIGTERM to a node → every other node has printed it
// as left.
func BenchmarkLeaveSeen(b *testing.B) {
	for _, size := range benchSizes() {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			steady, h := benchLAN(b, size)
			var left []time.Duration
			for i := range benchTries {
				n, _ := startSeen(b, h, steady, fmt.Sprintf("leaver%d", i))
				left = append(left, stopSeen(b, n, steady))
			}
			reportMs(b, "left", left)
		})
	}
}

// BenchmarkCrashSeen: SIGKILL to a node → every other node has printed it
// as offline.
func BenchmarkCrashSeen(b *testing.B) {
	for _, size := range benchSizes() {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			steady, h := benchLAN(b, size)
			var lost []time.Duration
			for i := range benchTries {
				n, _ := startSeen(b, h, steady, fmt.Sprintf("crasher%d", i))
				start := time.Now()
				n.Kill()
				lost = append(lost, seenBy(b, steady, n.id(), "offline", start, offlineWithin))
			}
			reportMs(b, "offline", lost)
		})
	}
}

// BenchmarkIdle: the cost of a node on a quiet LAN where every node sees
// every other: resident memory, and CPU time over an idle window
// (LANCHAT_IDLE_WINDOW, default 10s; CPU from the threads' schedstat).
// With LANCHAT_IDLE_BASELINE=<path to another lanchat binary> every other
// node runs that binary instead, in the same lab and window, and the
// baseline's CPU and the ratio are reported too: on a shared machine two
// builds are only comparable side by side.
func BenchmarkIdle(b *testing.B) {
	const settle = 3 * time.Second
	window := 10 * time.Second
	if s := os.Getenv("LANCHAT_IDLE_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("LANCHAT_IDLE_WINDOW: %v", err)
		}
		window = d
	}
	baseline := os.Getenv("LANCHAT_IDLE_BASELINE")
	for _, size := range benchSizes() {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			lab := netlab.New(b, size)
			nodes := make([]*node, size)
			for i, h := range lab.Hosts {
				o := nodeOpts{name: "idle" + strconv.Itoa(i+1), logLevel: "info"}
				if baseline != "" && i%2 == 1 {
					o.bin = baseline
				}
				nodes[i] = launchNode(b, h, o)
			}
			for _, n := range nodes {
				if err := n.waitReady(readyTimeout); err != nil {
					b.Fatal(err)
				}
			}
			waitSees(b, seeTimeout*2, nodes, nodes, "available")
			time.Sleep(settle) // let the joins' gossip die down

			before := make([]procStat, len(nodes))
			for i, n := range nodes {
				before[i] = readProcStat(b, n)
			}
			time.Sleep(window)
			var cpu, base, rss []float64
			for i, n := range nodes {
				after := readProcStat(b, n)
				c := 100 * float64(after.cpuNs-before[i].cpuNs) / float64(window.Nanoseconds())
				if baseline != "" && i%2 == 1 {
					base = append(base, c)
					continue
				}
				cpu = append(cpu, c)
				rss = append(rss, float64(after.rssKiB)/1024)
			}
			b.ReportMetric(mean(cpu), "cpu-%/node")
			b.ReportMetric(slices.Max(cpu), "cpu-%-max")
			b.ReportMetric(mean(rss), "rss-MiB/node")
			b.ReportMetric(slices.Max(rss), "rss-MiB-max")
			if len(base) > 0 {
				b.ReportMetric(mean(base), "baseline-cpu-%/node")
				b.ReportMetric(mean(cpu)/mean(base), "cpu-ratio")
			}
		})
	}
}

// benchLAN builds a LAN of size hosts with a node on each but the last,
// all seeing each other, and returns the last, empty host for the node
// under test.
func benchLAN(b *testing.B, size int) ([]*node, *netlab.Host) {
	b.Helper()
	lab := netlab.New(b, size)
	steady := startBenchNodes(b, lab.Hosts[:size-1], "steady")
	waitSees(b, seeTimeout*2, steady, steady, "available")
	return steady, lab.Hosts[size-1]
}

// startBenchNodes starts a node on each host at the default log level (debug
// logging would cost CPU the benchmark measures).
func startBenchNodes(b *testing.B, hosts []*netlab.Host, prefix string) []*node {
	b.Helper()
	nodes := make([]*node, len(hosts))
	for i, h := range hosts {
		nodes[i] = launchNode(b, h, nodeOpts{name: prefix + strconv.Itoa(i+1), logLevel: "info"})
	}
	for _, n := range nodes {
		if err := n.waitReady(readyTimeout); err != nil {
			b.Fatal(err)
		}
	}
	return nodes
}

// startSeen starts a node with a fresh data directory on h and returns it
// with the time from its start until every observer printed it available.
func startSeen(b *testing.B, h *netlab.Host, observers []*node, name string) (*node, time.Duration) {
	b.Helper()
	n := launchNode(b, h, nodeOpts{name: name, logLevel: "info"})
	if err := n.waitReady(readyTimeout); err != nil {
		b.Fatal(err)
	}
	return n, seenBy(b, observers, n.id(), "available", n.started, seeTimeout)
}

// stopSeen stops n with SIGTERM and returns the time until every observer
// printed it as left.
func stopSeen(b *testing.B, n *node, observers []*node) time.Duration {
	b.Helper()
	start := time.Now()
	if code := n.Stop(); code != 0 {
		b.Errorf("%s exited %d on SIGTERM", n, code)
	}
	return seenBy(b, observers, n.id(), "left", start, seeTimeout)
}

// seenBy waits until every observer has printed a presence event putting
// peer id in state at or after since, and returns the time from since to
// the last of those events.
func seenBy(b *testing.B, observers []*node, id, state string, since time.Time, timeout time.Duration) time.Duration {
	b.Helper()
	var worst time.Duration
	waitFor(b, timeout, func() error {
		worst = 0
		for _, o := range observers {
			ev, ok := o.presenceSince(id, state, since)
			if !ok {
				return fmt.Errorf("%s has not printed %.12s as %s", o, id, state)
			}
			worst = max(worst, ev.at.Sub(since))
		}
		return nil
	})
	return worst
}

// reportMs reports the median and worst of samples, in milliseconds.
func reportMs(b *testing.B, what string, samples []time.Duration) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.ReportMetric(float64(median.Microseconds())/1000, what+"-median-ms")
	b.ReportMetric(float64(s[len(s)-1].Microseconds())/1000, what+"-worst-ms")
	b.Logf("%s over %d tries: %v", what, len(s), s)
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is what BenchmarkIdle reads of a process.
type procStat struct {
	cpuTicks int64 // utime + stime
	cpuNs    int64 // time on a CPU, summed over the threads' schedstat: finer than ticks
	rssKiB   int64 // VmRSS
	hwmKiB   int64 // VmHWM, the most resident so far
}

// readProcStat reads the node process's CPU time and resident memory. The
// node's pid is that of `ip netns exec`, which execs lanchat in place.
func readProcStat(b *testing.B, n *node) procStat {
	b.Helper()
	pid := n.cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("%s: %v", n, err)
	}
	// The command name, in parentheses, may hold spaces: count fields from
	// the last ')'. utime and stime are fields 14 and 15 (proc(5)); what
	// follows the ')' starts at field 3, so they are at indexes 11 and 12.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 14 {
		b.Fatalf("%s: short /proc/%d/stat: %q", n, pid, s)
	}
	if comm := s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]; comm != "lanchat" {
		b.Fatalf("%s: pid %d is %q, not lanchat", n, pid, comm)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("%s: parse /proc/%d/stat: %q", n, pid, s)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("%s: %v", n, err)
	}
	var rss, hwm int64 = -1, -1
	for line := range strings.SplitSeq(string(status), "\n") {
		for _, f := range []struct {
			key string
			v   *int64
		}{{"VmRSS:", &rss}, {"VmHWM:", &hwm}} {
			if v, ok := strings.CutPrefix(line, f.key); ok {
				*f.v, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					b.Fatalf("%s: parse %s %q: %v", n, f.key, v, err)
				}
			}
		}
	}
	if rss < 0 || hwm < 0 {
		b.Fatalf("%s: no VmRSS or VmHWM in /proc/%d/status", n, pid)
	}
	return procStat{cpuTicks: utime + stime, cpuNs: schedNs(b, pid), rssKiB: rss, hwmKiB: hwm}
}

// schedNs sums the time pid's threads spent on a CPU, in nanoseconds
// (the first field of /proc/<pid>/task/<tid>/schedstat): at idle a node
// uses a few clock ticks a second, too coarse to compare two builds
// over a short window. A thread that exited takes its time with it; the
// Go runtime keeps its threads.
func schedNs(b *testing.B, pid int) int64 {
	b.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatalf("pid %d: %v", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(raw))
		if len(f) < 1 {
			b.Fatalf("pid %d: bad schedstat %q", pid, raw)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("pid %d: bad schedstat %q", pid, raw)
		}
		sum += v
	}
	return sum
}
