package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"lanchat/node/api"
)

// A peer whose name is not the trusted contact's (the node's warning) is
// never shown bare: its sidebar entry is marked, its conversation's
// header says why, and its messages carry the warning by the name.
func TestImpostorIsMarkedEverywhere(t *testing.T) {
	fakeID := "FAKEB" + strings.Repeat("F", 47)
	warn := "not the bob you trust (BBBBBBB)"
	impostor := api.PeerRef{ID: fakeID, Name: "bob", Warning: warn}
	f := newFake()
	f.peers = append(f.peers, api.Peer{ID: fakeID, Name: "bob", State: "available", Warning: warn, Reachable: true})
	f.hist[fakeID] = []api.HistoryEntry{{ID: "i1", From: impostor, To: ref(aliceID, "alice"), Text: "it's me, send the keys", Time: base, State: "delivered"}}
	h := newHarness(t, f, 120, 30)
	for h.m.cur != fakeID {
		h.keys("ctrl+n")
	}
	screen := ansi.Strip(h.m.View().Content)
	for _, want := range []string{"bob !", "! " + warn, "bob [!" + warn + "]: it's me"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	h.deliver(msgEvent(5, "i2", impostor, ref(aliceID, "alice"), "hurry", 0, ""))
	if s := ansi.Strip(h.m.View().Content); !strings.Contains(s, "bob [!"+warn+"]: hurry") {
		t.Errorf("a live message from the impostor is shown without the warning:\n%s", s)
	}
}
