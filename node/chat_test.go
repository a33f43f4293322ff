package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/node/api"
)

// TestQueuedWhileOfflineDeliveredOnReturn: a message to a peer that left
// is queued (not an error), survives the sender's restart, and arrives
// once, in order, when the peer is back.
func TestQueuedWhileOfflineDeliveredOnReturn(t *testing.T) {
	ctx := context.Background()
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	a := startNode(t, Config{DataDir: aliceDir, Name: "alice"})
	b := startNode(t, Config{DataDir: bobDir, Name: "bob", Join: []string{a.gossip()}})
	waitFor(t, "alice sees bob", 5*time.Second, func() bool { p := a.peers(); return len(p) == 1 && p[0].Online() })
	bobID := b.info().ID
	b.stop()
	waitFor(t, "bob left", 5*time.Second, func() bool { return !a.peers()[0].Online() })

	for i := range 3 {
		res, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: fmt.Sprintf("queued %d", i)})
		if err != nil || res.State != "queued" {
			t.Fatalf("send to offline bob: %+v, %v", res, err)
		}
	}
	ob, err := a.n.Outbox(ctx)
	if err != nil || len(ob) != 1 || ob[0].Count != 3 || ob[0].Peer.Name != "bob" {
		t.Fatalf("outbox %+v, %v", ob, err)
	}
	// alice restarts: the outbox is on disk
	a.stop()
	a2 := startNode(t, Config{DataDir: aliceDir, Name: "alice"})
	b2 := startNode(t, Config{DataDir: bobDir, Name: "bob", Join: []string{a2.gossip()}})
	waitFor(t, "bob got all three", 5*time.Second, func() bool { return len(b2.messages()) >= 3 })
	// A wrong duplicate would come before the delivery records: once
	// alice's outbox is empty every acknowledgement is in.
	waitFor(t, "alice's outbox empty", 5*time.Second, func() bool {
		ob, _ := a2.n.Outbox(ctx)
		return len(ob) == 0
	})
	got := b2.messages()
	if len(got) != 3 {
		t.Fatalf("bob got %d messages", len(got))
	}
	for i, m := range got {
		if m.Text != fmt.Sprintf("queued %d", i) || m.From.Name != "alice" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	h, err := a2.n.History(ctx, api.HistoryQuery{Peer: bobID})
	if err != nil || len(h) != 3 {
		t.Fatalf("alice's history: %d, %v", len(h), err)
	}
	for _, e := range h {
		if e.State != "delivered" {
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
	waitFor(t, "mesh", 5*time.Second, func() bool { p := a.peers(); return len(p) == 1 && p[0].Online() })
	res, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: "read me"})
	if err != nil || res.State != "delivered" {
		t.Fatalf("send: %+v, %v", res, err)
	}
	h, err := b.n.History(ctx, api.HistoryQuery{Peer: "alice", MarkRead: true})
	if err != nil || len(h) != 1 || h[0].Text != "read me" {
		t.Fatalf("bob's history %+v, %v", h, err)
	}
	waitFor(t, "read receipt", 5*time.Second, func() bool {
		h, _ := a.n.History(ctx, api.HistoryQuery{})
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
	waitFor(t, "mesh", 5*time.Second, func() bool { p := a.peers(); return len(p) == 1 && p[0].Online() })
	if res, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: "through the node"}); err != nil || res.State != "delivered" {
		t.Fatalf("send: %+v %v", res, err)
	}
	bID := b.info().ID
	waitFor(t, "alice's contacts to name bob", 5*time.Second, func() bool {
		f, _ := os.ReadFile(filepath.Join(a.dir, ContactsFile))
		return strings.Contains(string(f), bID)
	})
	// Another process (a one-shot command that found nobody) stores a
	// message for bob in alice's data directory.
	o, err := NewOneShot(Config{DataDir: a.dir, Name: "alice", NoMDNS: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	o.Wait = 50 * time.Millisecond
	if res, err := o.Send(ctx, api.SendRequest{To: b.info().ID, Text: "behind its back"}); err != nil || res.State != "queued" {
		t.Fatalf("one-shot send: %+v %v", res, err)
	}
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
	waitFor(t, "mesh", 5*time.Second, func() bool { p := bob.peers(); return len(p) == 2 && p[0].Online() && p[1].Online() })
	const flood = 600
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 8 {
				if _, err := alice.n.Send(ctx, api.SendRequest{To: "bob", Text: fmt.Sprintf("flood %d", i)}); err != nil {
					t.Errorf("flood %d: %v", i, err)
					return
				}
			}
		}()
	}
	waitFor(t, "the flood to hit the limit", 5*time.Second, func() bool { return len(bob.messages()) >= 100 })
	t0 := time.Now()
	res, err := carol.n.Send(ctx, api.SendRequest{To: "bob", Text: "carol is not flooding"})
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
