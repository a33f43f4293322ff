package tui

import (
	"strings"
	"testing"

	"charm.land/bubbles/v2/textarea"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

// Names, status texts, messages, room notices and search labels from a
// hostile peer never reach the terminal raw: with every style off, the
// screen holds no escape, control, bidi or other invisible character
// but the line breaks, and shows each as its visible escape.
func TestHostileText(t *testing.T) {
	evilName := "\x1b[2J\x1b]0;pwned\x07mal\u202egpj.exe"
	evilStatus := "\u200bhidden\u009b31m\r\xff"
	evilText := "hi\x1b[31m red\x07\r\n\u2066isolate\u2069 \x00nul \x7fdel \u202etxt.exe\u2028next"
	evilID := "EVILL" + strings.Repeat("E", 47)
	evil := api.PeerRef{ID: evilID, Name: evilName}

	f := newFake()
	f.peers = append(f.peers, api.Peer{ID: evilID, Name: evilName, State: "available", StatusText: evilStatus, Reachable: true})
	f.hist[evilID] = []api.HistoryEntry{{ID: "e1", From: evil, To: ref(aliceID, "alice"), Text: evilText, Time: base, State: "read"}}
	h := newHarness(t, f, 100, 30)
	h.m.st = styles{}
	h.m.input.SetStyles(textarea.Styles{})
	for _, c := range h.m.convs {
		for _, e := range c.entries {
			e.lines = nil // rendered with the styles before
		}
	}

	gen := ref("#general", "#general")
	h.deliver(msgEvent(2, "e2", evil, gen, evilText, 0, "#general"))
	h.send(eventMsg{api.RoomChange{Room: api.Room{Name: "#general", Joined: true}, Peer: evil, Change: api.RoomJoined}})
	h.send(eventMsg{api.Warning{Text: "warn\x1b[5m"}})
	check := func(what string) {
		t.Helper()
		screen := h.m.View().Content
		for _, r := range screen {
			// U+FFFD is what a byte that is not UTF-8 is shown as.
			if r != '\n' && r != '\uFFFD' && termtext.Invisible(r) {
				i := strings.IndexRune(screen, r)
				t.Errorf("%s: %U reached the screen, after %q", what, r, screen[max(0, i-80):min(len(screen), i+60)])
				return
			}
		}
	}
	check("#general")
	s := h.m.View().Content
	for _, want := range []string{`\x1b[2J`, `\u202egpj.exe`, `hi\x1b[31m red\x07`, `\u2066isolate\u2069`, `\x00nul`, `\x7fdel`, `\u2028next`, `warn\x1b[5m`} {
		if !strings.Contains(s, want) {
			t.Errorf("#general does not show %q visibly:\n%s", want, s)
		}
	}
	h.keys("esc")
	for h.m.cur != evilID {
		h.keys("ctrl+n")
	}
	check("the direct conversation")
	if s := h.m.View().Content; !strings.Contains(s, "\\u200bhidden\\u009b31m\\x0d\uFFFD") {
		t.Errorf("the status text is not shown escaped:\n%s", s)
	}
	h.typeText("/search isolate")
	h.keys("enter")
	check("search results")
	h.keys("esc", "ctrl+k")
	h.typeText("mal")
	check("the quick switcher")
}
