package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"lanchat/node/api"
)

// Over the control socket, as a person's commands see it: the first bob
// proven on the LAN is pinned; a second node calling itself bob is shown
// with a warning in peers, in its messages and in the contact book, and
// "bob" keeps meaning the first one, even after it goes offline. Trusting
// the newcomer by id makes "bob" ambiguous until the old one is
// untrusted.
func TestNameSquatterIsFlaggedAndNeverChosen(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	ctx := context.Background()
	ca, err := api.Connect(ctx, ControlSocket(a.dir))
	if err != nil {
		t.Fatal(err)
	}
	bobID := b.info().ID
	waitFor(t, "alice trusts bob", 5*time.Second, func() bool {
		ps, _ := ca.Peers(ctx)
		return len(ps) == 1 && ps[0].ID == bobID && ps[0].Trusted
	})
	m := start(t, "bob", a.gossip())
	squatID := m.info().ID
	waitFor(t, "alice sees the squatter verified, with a warning", 5*time.Second, func() bool {
		ps, _ := ca.Peers(ctx)
		for _, p := range ps {
			if p.ID == squatID {
				return p.Verified && !p.Trusted && p.Warning != ""
			}
		}
		return false
	})
	res, err := ca.Send(ctx, api.SendRequest{To: "bob", Text: "for the real bob", TimeoutMS: 5000})
	if err != nil || res.To.ID != bobID || !res.To.Trusted {
		t.Fatalf(`send "bob": %+v, %v; want the pinned bob`, res, err)
	}
	// The squatter writes to alice: the message says it is not that bob.
	cm, err := api.Connect(ctx, ControlSocket(m.dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cm.Send(ctx, api.SendRequest{To: "alice", Text: "it's me, bob", Wait: true, TimeoutMS: 5000}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice got the squatter's message", 5*time.Second, func() bool {
		for _, msg := range a.messages() {
			if msg.From.ID == squatID {
				return true
			}
		}
		return false
	})
	for _, msg := range a.messages() {
		if msg.From.ID == squatID && msg.From.Warning == "" {
			t.Fatalf("the squatter's message shows no warning: %+v", msg.From)
		}
	}
	// The real bob goes home; "bob" still means him.
	b.stop()
	res, err = ca.Send(ctx, api.SendRequest{To: "bob", Text: "see you tomorrow"})
	if err != nil || res.To.ID != bobID {
		t.Fatalf(`send "bob" with only the squatter online: %+v, %v`, res, err)
	}

	if _, err := ca.Trust(ctx, api.TrustRequest{ID: "bob"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("trust by name: %v, want invalid", err)
	}
	c, err := ca.Trust(ctx, api.TrustRequest{ID: squatID[:8]})
	if err != nil || !c.Trusted || c.ID != squatID {
		t.Fatalf("trust the newcomer: %+v, %v", c, err)
	}
	if _, err := ca.Send(ctx, api.SendRequest{To: "bob", Text: "which?"}); !errors.Is(err, api.ErrAmbiguousRecipient) {
		t.Fatalf(`"bob" with two trusted: %v, want ambiguous_recipient`, err)
	}
	if _, err := ca.Untrust(ctx, api.TrustRequest{ID: bobID}); err != nil {
		t.Fatal(err)
	}
	res, err = ca.Send(ctx, api.SendRequest{To: "bob", Text: "hi again", TimeoutMS: 5000})
	if err != nil || res.To.ID != squatID {
		t.Fatalf(`"bob" after the change-over: %+v, %v`, res, err)
	}
	cs, err := ca.Contacts(ctx)
	if err != nil || len(cs) < 2 || cs[0].ID != squatID || !cs[0].Trusted || !cs[0].ByUser || len(cs[0].Fingerprint) != 35 {
		t.Fatalf("contacts: %+v, %v", cs, err)
	}
	self, err := ca.Self(ctx)
	if err != nil || len(self.Fingerprint) != 35 {
		t.Fatalf("self fingerprint %q, %v", self.Fingerprint, err)
	}
}
