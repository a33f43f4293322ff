//go:build linux

package e2e

import (
	"context"
	"fmt"
	"slices"
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
	for _, size := range []int{10, 20} {
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
}

// reportP99 reports the median and 99th percentile of samples in ms.
func reportP99(b *testing.B, what string, samples []time.Duration) {
	b.Helper()
	s := slices.Clone(samples)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, what+"-median-ms")
	b.ReportMetric(float64(s[(len(s)*99)/100].Microseconds())/1000, what+"-p99-ms")
}
