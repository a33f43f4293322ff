package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"lanchat/node/api"
)

func (r *running) typing() []api.Typing {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.Typing
	for _, e := range r.events {
		if v, ok := e.(api.Typing); ok {
			out = append(out, v)
		}
	}
	return out
}

// Through the control socket, POST /v1/typing reaches the peer as a
// typing event, at most once every 3 s, and leaves no trace in either
// history.
func TestTypingReachesThePeerOverTheSocket(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	ctx := context.Background()
	ca, err := api.Connect(ctx, ControlSocket(a.dir))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice sees bob verified", 5*time.Second, func() bool {
		ps, _ := ca.Peers(ctx)
		return len(ps) == 1 && ps[0].Verified
	})
	r, err := ca.Typing(ctx, api.TypingRequest{To: "bob"})
	if err != nil || !r.Sent || r.To.ID != b.info().ID {
		t.Fatalf("typing to bob: %+v, %v", r, err)
	}
	waitFor(t, "bob sees alice typing", 5*time.Second, func() bool { return len(b.typing()) == 1 })
	if ev := b.typing()[0]; ev.Peer.ID != a.info().ID || ev.Peer.Name != "alice" {
		t.Fatalf("typing event %+v", ev)
	}
	if r, err := ca.Typing(ctx, api.TypingRequest{To: "bob"}); err != nil || r.Sent {
		t.Errorf("a second indicator at once: %+v, %v; want not sent", r, err)
	}
	if _, err := ca.Typing(ctx, api.TypingRequest{To: "#ops"}); !errors.Is(err, api.ErrNotMember) {
		t.Errorf("typing in a room alice is not in: %v, want not_member", err)
	}
	if _, err := ca.Typing(ctx, api.TypingRequest{To: "#Bad"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("typing in a bad room name: %v, want invalid", err)
	}
	// In #general, which both are in: bob sees alice typing there.
	for _, n := range []*running{a, b} {
		waitFor(t, "both in #general", 10*time.Second, func() bool {
			ms, _ := n.n.RoomMembers(ctx, "#general")
			return len(ms) == 2
		})
	}
	waitFor(t, "a room indicator goes out", 10*time.Second, func() bool {
		r, err := ca.Typing(ctx, api.TypingRequest{To: "#general"})
		return err == nil && r.Sent && r.To.ID == "#general"
	})
	waitFor(t, "bob sees alice typing in #general", 5*time.Second, func() bool {
		for _, ev := range b.typing() {
			if ev.Room == "#general" && ev.Peer.ID == a.info().ID {
				return true
			}
		}
		return false
	})
	for _, n := range []*running{a, b} {
		hs, err := n.n.History(ctx, api.HistoryQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.Room == "" {
				t.Errorf("a direct message in the history after typing: %+v", h)
			}
		}
	}
	if len(b.messages()) != 0 {
		t.Errorf("bob got messages: %+v", b.messages())
	}
}
