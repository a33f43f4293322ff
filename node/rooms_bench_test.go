package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"lanchat/node/api"
)

// BenchmarkRoomCatchUp10k: bob was away while alice wrote 10,000
// messages to #general; bob starts again → he holds all of them. Both
// nodes in one process on loopback, with their SQLite histories; the
// time runs from bob's start to the last message stored.
func BenchmarkRoomCatchUp10k(b *testing.B) {
	const missed = 10_000
	ctx := context.Background()
	b.StopTimer()
	for range b.N {
		a := startNode(b, Config{DataDir: b.TempDir(), Name: "alice", Logger: quiet(), Sync: benchSync()})
		bobDir := b.TempDir()
		c := startNode(b, Config{DataDir: bobDir, Name: "bob", Logger: quiet(), Sync: benchSync(), Join: []string{a.gossip()}})
		waitFor(b, "bob in #general", 10*time.Second, func() bool {
			ms, _ := a.n.RoomMembers(ctx, "#general")
			return len(ms) == 2
		})
		c.stop()
		waitFor(b, "bob gone", 10*time.Second, func() bool {
			ms, _ := a.n.RoomMembers(ctx, "#general")
			return len(ms) == 2 && (!ms[0].Online || !ms[1].Online)
		})
		for i := range missed {
			if _, err := a.n.Send(ctx, api.SendRequest{To: "#general", Text: fmt.Sprintf("while bob was away %d", i)}); err != nil {
				b.Fatal(err)
			}
		}
		heads, _ := a.n.chat.Heads(ctx, "#general")
		want := heads[a.n.id.ID]
		b.StartTimer()
		t0 := time.Now()
		c = startNode(b, Config{DataDir: bobDir, Name: "bob", Logger: quiet(), Sync: benchSync(), Join: []string{a.gossip()}})
		var first time.Duration
		for {
			h, _ := c.n.chat.Heads(ctx, "#general")
			if first == 0 && h[a.n.id.ID] > 1 {
				first = time.Since(t0)
			}
			if h[a.n.id.ID] == want {
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("bob holds %d of alice's %d events after a minute", h[a.n.id.ID], want)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took := time.Since(t0)
		b.StopTimer()
		b.ReportMetric(float64(took.Milliseconds()), "caught-up-ms")
		b.ReportMetric(float64(first.Milliseconds()), "first-ms")
		c.stop()
		a.stop()
	}
}

// BenchmarkRoomSend: one node sends room messages to 9 others, all in
// this process on loopback; for profiling the fan-out (the e2e
// benchmark measures it on the LAN, per process).
func BenchmarkRoomSend(b *testing.B) {
	ctx := context.Background()
	a := startNode(b, Config{DataDir: b.TempDir(), Name: "alice", Logger: quiet(), Sync: benchSync()})
	for i := range 9 {
		startNode(b, Config{DataDir: b.TempDir(), Name: fmt.Sprintf("m%d", i), Logger: quiet(), Sync: benchSync(), Join: []string{a.gossip()}})
	}
	waitFor(b, "all in #general", 20*time.Second, func() bool {
		ms, _ := a.n.RoomMembers(ctx, "#general")
		online := 0
		for _, m := range ms {
			if m.Online {
				online++
			}
		}
		return online == 10
	})
	if _, err := a.n.Send(ctx, api.SendRequest{To: "#general", Text: "warm-up", Wait: true, TimeoutMS: 10000}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		rep, err := a.n.Send(ctx, api.SendRequest{To: "#general", Text: fmt.Sprintf("line %d", i)})
		if err != nil || rep.Reached != 9 {
			b.Fatalf("%+v %v", rep, err)
		}
	}
}
