//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
	lanchatnode "lanchat/node"
	"lanchat/node/api"
)

// BenchmarkRoomStoredByAll: a room message is sent on one node of a LAN
// of 20 → every other member has printed it (it prints a message only
// once it is stored), next to a direct message to one of them in the same
// run. Reports the median and p99 over the tries, and the sender's CPU
// per try.
func BenchmarkRoomStoredByAll(b *testing.B) {
	sizes := []int{10, 20}
	if v := os.Getenv("LANCHAT_ROOM_SIZES"); v != "" { // e.g. 50
		sizes = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 2 {
				b.Fatalf("LANCHAT_ROOM_SIZES: %q", v)
			}
			sizes = append(sizes, n)
		}
	}
	for _, size := range sizes {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) { roomStoredByAll(b, size) })
	}
}

func roomStoredByAll(b *testing.B, size int) {
	const tries = 40
	lab := netlab.New(b, size)
	nodes := startBenchNodes(b, lab.Hosts, "m")
	waitSees(b, seeTimeout*2, nodes, nodes, "available")
	sender, others := nodes[0], nodes[1:]
	ctx := context.Background()
	c, err := api.Connect(ctx, lanchatnode.ControlSocket(sender.dataDir))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	waitFor(b, seeTimeout*2, func() error {
		ms, err := c.RoomMembers(ctx, "#general")
		if err != nil || len(ms) != size {
			return fmt.Errorf("#general has %d members, want %d (%v)", len(ms), size, err)
		}
		return nil
	})
	seen := func(obs []*node, text string, since time.Time) (time.Duration, error) {
		var worst time.Duration
		for _, o := range obs {
			i := slices.IndexFunc(o.received(), func(e event) bool { return e.Text == text })
			if i < 0 {
				return 0, fmt.Errorf("%s has not printed %q", o, text)
			}
			worst = max(worst, o.received()[i].at.Sub(since))
		}
		return worst, nil
	}
	// The first message opens a stream to every member; what is measured
	// is the steady state.
	if rep, err := c.Send(ctx, api.SendRequest{To: "#general", Text: "warm-up", Wait: true, TimeoutMS: 20000}); err != nil || rep.Reached != size-1 {
		b.Fatalf("warm-up: %+v, %v", rep, err)
	}
	for _, o := range others {
		if _, err := c.Send(ctx, api.SendRequest{To: o.id(), Text: "warm-up"}); err != nil {
			b.Fatal(err)
		}
	}
	var room, direct []time.Duration
	cpu0 := readProcStat(b, sender)
	for i := range tries {
		text := fmt.Sprintf("room bench %d", i)
		start := time.Now()
		rep, err := c.Send(ctx, api.SendRequest{To: "#general", Text: text})
		if err != nil || rep.Reached != size-1 {
			b.Fatalf("room send: %+v, %v", rep, err)
		}
		var d time.Duration
		waitFor(b, seeTimeout, func() (err error) { d, err = seen(others, text, start); return err })
		room = append(room, d)

		text = fmt.Sprintf("direct bench %d", i)
		start = time.Now()
		if _, err := c.Send(ctx, api.SendRequest{To: others[i%len(others)].id(), Text: text}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, seeTimeout, func() (err error) { d, err = seen(others[i%len(others):i%len(others)+1], text, start); return err })
		direct = append(direct, d)
	}
	cpu1 := readProcStat(b, sender)
	reportP99(b, "room-stored-by-all", room)
	reportP99(b, "direct-stored", direct)
	// CPU of the sender over the loop (a room and a direct message per
	// try, and the idle gossip meanwhile), per try: ticks are 10 ms, so
	// this is coarse.
	b.ReportMetric(float64(cpu1.cpuTicks-cpu0.cpuTicks)*1000/clockTicks/tries, "sender-cpu-ms/try")

	// The sender's cost of a room message alone: CPU and bytes sent
	// (its namespace's eth0 transmit counter) over a run of room messages,
	// less what the same time costs idle.
	const burst = 200
	idle := func(d time.Duration) (ticks int64, tx int64) {
		c0, t0 := readProcStat(b, sender), txBytes(b, sender)
		time.Sleep(d)
		return readProcStat(b, sender).cpuTicks - c0.cpuTicks, txBytes(b, sender) - t0
	}
	idleTicks, idleTx := idle(3 * time.Second)
	c0, t0, start := readProcStat(b, sender), txBytes(b, sender), time.Now()
	for i := range burst {
		if rep, err := c.Send(ctx, api.SendRequest{To: "#general", Text: fmt.Sprintf("cost %d: a line of chat about the size people type", i)}); err != nil || rep.Reached != size-1 {
			b.Fatalf("room send: %+v, %v", rep, err)
		}
	}
	took := time.Since(start)
	scale := took.Seconds() / 3
	ticks := float64(readProcStat(b, sender).cpuTicks-c0.cpuTicks) - scale*float64(idleTicks)
	tx := float64(txBytes(b, sender)-t0) - scale*float64(idleTx)
	b.ReportMetric(ticks*1e6/clockTicks/burst, "sender-cpu-µs/room-msg")
	b.ReportMetric(tx/burst, "sender-tx-bytes/room-msg")
	b.ReportMetric(tx/burst/float64(size-1), "sender-tx-bytes/member")
}

// reportP99 reports the median and 99th percentile of samples in ms.
func reportP99(b *testing.B, what string, samples []time.Duration) {
	b.Helper()
	s := slices.Clone(samples)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, what+"-median-ms")
	b.ReportMetric(float64(s[(len(s)*99)/100].Microseconds())/1000, what+"-p99-ms")
}

// txBytes reads the bytes the node's host has sent on eth0: the node's
// process sees its namespace's interfaces in /proc/<pid>/net/dev.
func txBytes(b *testing.B, n *node) int64 {
	b.Helper()
	dev, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", n.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(dev), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || name != "eth0" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			break
		}
		v, err := strconv.ParseInt(f[8], 10, 64) // receive has 8 fields, then transmit bytes
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	b.Fatalf("%s: no eth0 in /proc/%d/net/dev", n, n.cmd.Process.Pid)
	return 0
}
