package node

import (
	"context"
	"fmt"
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
