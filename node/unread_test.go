package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"lanchat/node/api"
)

// firstSnapshot subscribes to n's events over its control socket and
// returns the snapshot the stream starts with.
func firstSnapshot(t *testing.T, r *running) api.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := api.Connect(ctx, ControlSocket(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	var snap api.Snapshot
	stop := errors.New("got it")
	err = c.Events(ctx, func(ev api.Event) error {
		snap, _ = ev.(api.Snapshot)
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("events: %v", err)
	}
	return snap
}

// A snapshot counts each direct conversation's unread messages from the
// store, so a front end opening later shows them; read, they count no
// more.
func TestSnapshotCountsDirectUnread(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	ctx := context.Background()
	waitFor(t, "alice sees bob", 5*time.Second, func() bool { return len(a.peers()) == 1 })
	var ids []string
	for _, text := range []string{"one", "two"} {
		r, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: text, TimeoutMS: 10000})
		if err != nil || !r.Delivered() {
			t.Fatalf("send %q: %+v, %v", text, r, err)
		}
		ids = append(ids, r.ID)
	}
	snap := firstSnapshot(t, b)
	if len(snap.Unread) != 1 || snap.Unread[0].Peer.ID != a.info().ID || snap.Unread[0].Peer.Name != "alice" || snap.Unread[0].Unread != 2 {
		t.Fatalf("bob's snapshot unread %+v, want alice's 2", snap.Unread)
	}
	if s := firstSnapshot(t, a); len(s.Unread) != 0 {
		t.Errorf("alice's snapshot counts what she sent: %+v", s.Unread)
	}
	if err := b.n.MarkRead(ctx, api.ReadRequest{IDs: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	if s := firstSnapshot(t, b); len(s.Unread) != 1 || s.Unread[0].Unread != 1 {
		t.Errorf("after one is read: %+v, want 1", s.Unread)
	}
	if err := b.n.MarkRead(ctx, api.ReadRequest{IDs: ids[1:]}); err != nil {
		t.Fatal(err)
	}
	if s := firstSnapshot(t, b); len(s.Unread) != 0 {
		t.Errorf("after both are read: %+v, want none", s.Unread)
	}
}
