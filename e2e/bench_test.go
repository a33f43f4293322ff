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
// every other: resident memory, and CPU time over an idle window.
func BenchmarkIdle(b *testing.B) {
	const settle, window = 3 * time.Second, 10 * time.Second
	for _, size := range benchSizes() {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			lab := netlab.New(b, size)
			nodes := startBenchNodes(b, lab.Hosts, "idle")
			waitSees(b, seeTimeout*2, nodes, nodes, "available")
			time.Sleep(settle) // let the joins' gossip die down

			before := make([]procStat, len(nodes))
			for i, n := range nodes {
				before[i] = readProcStat(b, n)
			}
			time.Sleep(window)
			var cpu, rss []float64
			for i, n := range nodes {
				after := readProcStat(b, n)
				ticks := after.cpuTicks - before[i].cpuTicks
				cpu = append(cpu, 100*float64(ticks)/clockTicks/window.Seconds())
				rss = append(rss, float64(after.rssKiB)/1024)
			}
			b.ReportMetric(mean(cpu), "cpu-%/node")
			b.ReportMetric(slices.Max(cpu), "cpu-%-max")
			b.ReportMetric(mean(rss), "rss-MiB/node")
			b.ReportMetric(slices.Max(rss), "rss-MiB-max")
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
	return procStat{cpuTicks: utime + stime, rssKiB: rss, hwmKiB: hwm}
}
