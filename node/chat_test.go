package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"lanchat/message/store"
)

// TestQueuedWhileOfflineDeliveredOnReturn: a message to a peer that left
// is queued (not an error), survives the sender's restart, and arrives
// once, in order, when the peer is back.
func TestQueuedWhileOfflineDeliveredOnReturn(t *testing.T) {
	ctx := context.Background()
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	a := startNode(t, Config{DataDir: aliceDir, Name: "alice"})
	b := startNode(t, Config{DataDir: bobDir, Name: "bob", Join: []string{a.gossip()}})
	waitFor(t, "alice sees bob", 5*time.Second, func() bool { p, _ := a.n.Peers(); return len(p) == 1 && p[0].Online() })
	bobID := b.info().ID
	b.stop()
	waitFor(t, "bob left", 5*time.Second, func() bool { p, _ := a.n.Peers(); return !p[0].Online() })

	for i := range 3 {
		res, err := a.n.Send(ctx, "bob", fmt.Sprintf("queued %d", i), false)
		if err != nil || res.State != "queued" {
			t.Fatalf("send to offline bob: %+v, %v", res, err)
		}
	}
	ob, err := a.n.OutboxFor(ctx)
	if err != nil || len(ob) != 1 || ob[0].Count != 3 || ob[0].Peer.Name != "bob" {
		t.Fatalf("outbox %+v, %v", ob, err)
	}
	// alice restarts: the outbox is on disk
	a.stop()
	a2 := startNode(t, Config{DataDir: aliceDir, Name: "alice"})
	b2 := startNode(t, Config{DataDir: bobDir, Name: "bob", Join: []string{a2.gossip()}})
	waitFor(t, "bob got all three", 5*time.Second, func() bool { return len(b2.messages()) >= 3 })
	time.Sleep(200 * time.Millisecond) // a wrong duplicate would show up by now
	got := b2.messages()
	if len(got) != 3 {
		t.Fatalf("bob got %d messages", len(got))
	}
	for i, m := range got {
		if m.Text != fmt.Sprintf("queued %d", i) || m.From.Name != "alice" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	waitFor(t, "alice's outbox empty", 5*time.Second, func() bool {
		ob, _ := a2.n.OutboxFor(ctx)
		return len(ob) == 0
	})
	h, err := a2.n.HistoryFor(ctx, HistoryQuery{Peer: bobID}, false)
	if err != nil || len(h) != 3 {
		t.Fatalf("alice's history: %d, %v", len(h), err)
	}
	for _, e := range h {
		if e.State != store.Delivered.String() {
			t.Fatalf("alice's history shows %q for %q", e.State, e.Text)
		}
	}
}

// TestReadReceipt: bob reading alice's message (history shown to a
// person) moves it to read on alice's side.
func TestReadReceipt(t *testing.T) {
	ctx := context.Background()
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	waitFor(t, "mesh", 5*time.Second, func() bool { p, _ := a.n.Peers(); return len(p) == 1 && p[0].Online() })
	res, err := a.n.Send(ctx, "bob", "read me", false)
	if err != nil || res.State != "delivered" {
		t.Fatalf("send: %+v, %v", res, err)
	}
	h, err := b.n.HistoryFor(ctx, HistoryQuery{Peer: "alice"}, true)
	if err != nil || len(h) != 1 || h[0].Text != "read me" {
		t.Fatalf("bob's history %+v, %v", h, err)
	}
	waitFor(t, "read receipt", 5*time.Second, func() bool {
		h, _ := a.n.HistoryFor(ctx, HistoryQuery{}, false)
		return len(h) == 1 && h[0].State == "read"
	})
}

// TestMessageStoredBehindTheNodesBackIsDelivered pins a bug: a one-shot
// command that stored a message in the data directory while the node
// was starting left it in the outbox forever, because the node's sender
// trusted its memory queue once the outbox had been empty.
func TestMessageStoredBehindTheNodesBackIsDelivered(t *testing.T) {
	ctx := context.Background()
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	waitFor(t, "mesh", 5*time.Second, func() bool { p, _ := a.n.Peers(); return len(p) == 1 && p[0].Online() })
	if res, err := a.n.Send(ctx, "bob", "through the node", false); err != nil || res.State != "delivered" {
		t.Fatalf("send: %+v %v", res, err)
	}
	// Another process (here: another handle) stores a message for bob.
	off, err := OpenOffline(a.dir, "alice", "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.chat.queue(ctx, b.info().ID, "text", "behind its back"); err != nil {
		t.Fatal(err)
	}
	off.Close()
	waitFor(t, "bob got the one-shot's message", 5*time.Second, func() bool {
		for _, m := range b.messages() {
			if m.Text == "behind its back" {
				return true
			}
		}
		return false
	})
}

// TestFloodingPeerIsLimitedOthersAreNot: a peer over its allowance has
// the excess refused (its outbox keeps and retries it, so nothing is
// lost) while another peer's message goes straight through.
func TestFloodingPeerIsLimitedOthersAreNot(t *testing.T) {
	ctx := context.Background()
	bob := startNode(t, Config{DataDir: t.TempDir(), Name: "bob", PeerRate: 200, PeerBurst: 100})
	alice := startNode(t, Config{DataDir: t.TempDir(), Name: "alice", Join: []string{bob.gossip()}})
	carol := startNode(t, Config{DataDir: t.TempDir(), Name: "carol", Join: []string{bob.gossip()}})
	waitFor(t, "mesh", 5*time.Second, func() bool { p, _ := bob.n.Peers(); return len(p) == 2 && p[0].Online() && p[1].Online() })
	const flood = 600
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 8 {
				if _, err := alice.n.Send(ctx, "bob", fmt.Sprintf("flood %d", i), false); err != nil {
					t.Errorf("flood %d: %v", i, err)
					return
				}
			}
		}()
	}
	waitFor(t, "the flood to hit the limit", 5*time.Second, func() bool { return len(bob.messages()) >= 100 })
	t0 := time.Now()
	res, err := carol.n.Send(ctx, "bob", "carol is not flooding", false)
	if err != nil || res.State != "delivered" {
		t.Fatalf("carol's message during the flood: %+v %v", res, err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("carol's message took %v during alice's flood", d)
	}
	wg.Wait()
	waitFor(t, "every flood message, after throttling", 20*time.Second, func() bool {
		n := 0
		for _, m := range bob.messages() {
			if m.From.Name == "alice" {
				n++
			}
		}
		return n == flood
	})
	// 500 messages over the burst at 200 a second: at least 2.5 s, if
	// the limit held.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("the flood was delivered in %v: the limit did not hold", d)
	}
	got := map[string]int{}
	for _, m := range bob.messages() {
		got[m.Text]++
	}
	for text, n := range got {
		if n != 1 {
			t.Fatalf("%q shown %d times", text, n)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(10, 5)
	for i := range 5 {
		if !l.allow("a") {
			t.Fatalf("burst message %d refused", i)
		}
	}
	if l.allow("a") {
		t.Fatal("message over the burst allowed")
	}
	if !l.allow("b") {
		t.Fatal("another peer's allowance was used up by the first")
	}
	time.Sleep(150 * time.Millisecond) // 10/s refills one token in 100 ms
	if !l.allow("a") {
		t.Fatal("allowance did not refill")
	}
}
