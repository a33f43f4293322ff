package tui

import (
	"slices"
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/textarea"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

// Typing in a direct conversation tells the peer, at most every 3 s;
// in a room, on a command line, or to someone offline it tells nobody.
func TestTypingIsSentSparingly(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	now := base.Add(48 * time.Hour)
	h.m.now = func() time.Time { return now }
	h.typeText("hello room")
	h.keys("ctrl+c")
	h.keys("alt+3") // bob
	h.typeText("/sta")
	h.keys("ctrl+c")
	if len(f.typing) != 0 {
		t.Fatalf("typing in a room or a command told %v", f.typing)
	}
	h.typeText("are you")
	if !slices.Equal(f.typing, []string{bobID}) {
		t.Fatalf("typing to bob: told %v, want bob once", f.typing)
	}
	now = now.Add(2 * time.Second)
	h.typeText(" there")
	if len(f.typing) != 1 {
		t.Errorf("2 s later: told %d times, want still once", len(f.typing))
	}
	now = now.Add(time.Second)
	h.typeText("?")
	if len(f.typing) != 2 {
		t.Errorf("3 s later: told %d times, want twice", len(f.typing))
	}
	h.keys("ctrl+c", "alt+4") // carol, offline
	h.typeText("hi carol")
	if len(f.typing) != 2 {
		t.Errorf("typing to someone offline told %v", f.typing)
	}
}

// A peer's indicator shows in the status line while its conversation is
// open, for 6 s or until its message comes.
func TestTypingIsShown(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	now := base.Add(48 * time.Hour)
	h.m.now = func() time.Time { return now }
	bob := ref(bobID, "bob")
	h.keys("alt+3")
	h.send(eventMsg{api.Typing{Type: api.TypeTyping, Peer: bob}})
	status := func() string {
		lines := strings.Split(h.plain(), "\n")
		return lines[len(lines)-2]
	}
	if s := status(); !strings.Contains(s, "alice (available) · bob is typing…") {
		t.Errorf("status line %q", s)
	}
	golden(t, "typing-80x24", h.screen())
	h.keys("alt+1")
	if s := status(); strings.Contains(s, "typing") {
		t.Errorf("in #general the status line says %q", s)
	}
	h.keys("alt+3")
	now = now.Add(6 * time.Second)
	if s := status(); strings.Contains(s, "typing") {
		t.Errorf("6 s later the status line still says %q", s)
	}
	h.send(eventMsg{api.Typing{Type: api.TypeTyping, Peer: bob}})
	h.deliver(msgEvent(9, "t1", bob, ref(aliceID, "alice"), "here", time.Hour, ""))
	if s := status(); strings.Contains(s, "typing") {
		t.Errorf("after bob's message the status line says %q", s)
	}
}

// A hostile name in a typing indicator is shown escaped.
func TestHostileTypingName(t *testing.T) {
	f := newFake()
	evilID := "EVILL" + strings.Repeat("E", 47)
	evil := ref(evilID, "mal\x1b[2J\u202e")
	f.peers = append(f.peers, api.Peer{ID: evilID, Name: evil.Name, State: "available"})
	h := newHarness(t, f, 100, 30)
	h.m.st = styles{}
	h.m.input.SetStyles(textarea.Styles{})
	for h.m.cur != evilID {
		h.keys("ctrl+n")
	}
	h.send(eventMsg{api.Typing{Type: api.TypeTyping, Peer: evil}})
	s := h.m.View().Content
	if !strings.Contains(s, `mal\x1b[2J\u202e is typing…`) {
		t.Errorf("the indicator is not shown escaped:\n%s", s)
	}
	for _, r := range s {
		if r != '\n' && termtext.Invisible(r) {
			t.Fatalf("%U reached the screen", r)
		}
	}
}
