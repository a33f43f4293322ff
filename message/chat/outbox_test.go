package chat

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// The outbox's retry check queries the store only when it may learn
// something (outbox.run). These pin each way something can come to wait
// without the check being told in memory.

// storeBehindItsBack stores an outgoing message to "to" through a second
// Store on the fixture's file: what a one-shot command does while the
// node runs.
func (f *fixture) storeBehindItsBack(t *testing.T, to, text string) *message.Envelope {
	t.Helper()
	opt := store.DefaultOptions()
	opt.Logger = testutil.Logger(t, slog.LevelWarn)
	other, err := store.Open(filepath.Join(f.dir, "history.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	env := sealFrom(t, f.me, to, message.KindText, text)
	if err := other.AddOutgoing(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestStoredByAnotherProcessForAnOnlinePeerGoesOut: the peer is online and
// its last session emptied the outbox, so nothing in memory says to look;
// another process's write must still be noticed.
func TestStoredByAnotherProcessForAnOnlinePeerGoesOut(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	if res, err := f.svc.Send(context.Background(), "bob", "first", false); err != nil || res.State != store.Delivered {
		t.Fatalf("send: %+v, %v", res, err)
	}
	time.Sleep(1500 * time.Millisecond) // the check settles: nothing waits
	env := f.storeBehindItsBack(t, bob.id, "behind its back")
	testutil.WaitFor(t, "the other process's message delivered", 5*time.Second, func() bool {
		return f.state(t, env.ID) == store.Delivered
	})
	if got := f.tr.texts(message.KindText); len(got) != 2 || got[1] != "behind its back" {
		t.Fatalf("transport got %q", got)
	}
}

// TestStoredByAnotherProcessGoesOutWhenThePeerReturns: stored behind the
// node's back while the peer was away (after a session that emptied its
// outbox), it goes out when the peer comes back.
func TestStoredByAnotherProcessGoesOutWhenThePeerReturns(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	if res, err := f.svc.Send(context.Background(), "bob", "first", false); err != nil || res.State != store.Delivered {
		t.Fatalf("send: %+v, %v", res, err)
	}
	f.pres.set(bob.id, "bob", mesh.Offline)
	time.Sleep(1500 * time.Millisecond) // the check settles: nothing waits
	env := f.storeBehindItsBack(t, bob.id, "while you were out")
	time.Sleep(2500 * time.Millisecond) // several checks while bob is away
	if got := f.tr.texts(message.KindText); len(got) != 1 {
		t.Fatalf("sent to an offline peer: %q", got)
	}
	f.pres.set(bob.id, "bob", mesh.Available)
	f.svc.PeerOnline(bob.id)
	testutil.WaitFor(t, "delivered on return", 5*time.Second, func() bool { return f.state(t, env.ID) == store.Delivered })
}

// TestFailingPeerIsRetriedEverySecondWhileOnline: a peer that is online
// but refuses (or cannot be reached) for several seconds is tried again
// until it takes the message, with nothing else happening meanwhile.
func TestFailingPeerIsRetriedEverySecondWhileOnline(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.pres.set(bob.id, "bob", mesh.Available)
	f.tr.setFail(message.ErrRejected)
	res, err := f.svc.Send(context.Background(), "bob", "persist", false)
	if err != nil || res.State != store.Queued {
		t.Fatalf("send: %+v, %v", res, err)
	}
	time.Sleep(3500 * time.Millisecond) // refused at several retries
	if f.state(t, res.ID) != store.Queued {
		t.Fatalf("state %v, want still queued", f.state(t, res.ID))
	}
	f.tr.setFail(nil)
	testutil.WaitFor(t, "a retry delivered it", 5*time.Second, func() bool { return f.state(t, res.ID) == store.Delivered })
}
