package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"lanchat/node/api"
)

// A client pages a conversation backwards with before, over the control
// socket as the terminal UI does; a bound that is not in the
// conversation is not_found, one without a conversation invalid.
func TestHistoryBeforeOverTheSocket(t *testing.T) {
	ctx := context.Background()
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	waitFor(t, "mesh", 5*time.Second, func() bool { p := a.peers(); return len(p) == 1 && p[0].Online() })
	for i := range 7 {
		if _, err := a.n.Send(ctx, api.SendRequest{To: "bob", Text: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c := api.NewClient(ControlSocket(b.n.cfg.DataDir))
	defer c.Close()
	var got []string
	before := ""
	for range 5 {
		page, err := c.History(ctx, api.HistoryQuery{Peer: "alice", Limit: 3, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		var texts []string
		for _, e := range page {
			texts = append(texts, e.Text)
		}
		got = append(texts, got...)
		before = page[0].ID
	}
	if fmt.Sprint(got) != "[m0 m1 m2 m3 m4 m5 m6]" {
		t.Errorf("paged back: %v", got)
	}
	if _, err := c.History(ctx, api.HistoryQuery{Peer: "alice", Before: "nosuchid"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("before an unknown id: %v, want not_found", err)
	}
	if _, err := c.History(ctx, api.HistoryQuery{Before: before}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("before without a conversation: %v, want invalid", err)
	}
}
