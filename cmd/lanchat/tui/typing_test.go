package tui

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/textarea"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

// Typing in a direct conversation tells the peer, and in a room its
// members (the node knows who is online), at most every 3 s per
// conversation; on a command line, to someone offline, or in a room
// this node left it tells nobody.
func TestTypingIsSentSparingly(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	now := base.Add(48 * time.Hour)
	h.m.now = func() time.Time { return now }
	h.typeText("hello room")
	if !slices.Equal(f.typing, []string{"#general"}) {
		t.Fatalf("typing in #general told %v, want the room once", f.typing)
	}
	h.keys("ctrl+c")
	h.m.convs["#general"].joined = false // left: its history is open still
	h.typeText("anyone?")
	h.keys("ctrl+c")
	h.m.convs["#general"].joined = true
	h.keys("alt+3") // bob
	h.typeText("/sta")
	h.keys("ctrl+c")
	if len(f.typing) != 1 {
		t.Fatalf("typing in a room left, or a command, told %v", f.typing[1:])
	}
	h.typeText("are you")
	if !slices.Equal(f.typing, []string{"#general", bobID}) {
		t.Fatalf("typing to bob: told %v, want bob once", f.typing)
	}
	now = now.Add(2 * time.Second)
	h.typeText(" there")
	if len(f.typing) != 2 {
		t.Errorf("2 s later: told %d times, want still twice", len(f.typing))
	}
	now = now.Add(time.Second)
	h.typeText("?")
	if len(f.typing) != 3 {
		t.Errorf("3 s later: told %d times, want 3", len(f.typing))
	}
	h.keys("ctrl+c", "alt+4") // carol, offline
	h.typeText("hi carol")
	if len(f.typing) != 3 {
		t.Errorf("typing to someone offline told %v", f.typing)
	}
}

// In a room, who is typing shows in the status line while the room is
// open: one, two by name, more as "several people"; each for 6 s or
// until their message in the room. A room this node is not in shows
// nothing, and a crowd of typists grows nothing without bound.
func TestRoomTypingIsShown(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	now := base.Add(48 * time.Hour)
	h.m.now = func() time.Time { return now }
	status := func() string {
		lines := strings.Split(h.plain(), "\n")
		return lines[len(lines)-2]
	}
	typing := func(p api.PeerRef, room string) {
		h.send(eventMsg{api.Typing{Type: api.TypeTyping, Peer: p, Room: room}})
	}
	bob, carol, dave := ref(bobID, "bob"), ref(carolID, "carol"), ref(daveID, "dave")
	if h.m.cur != "#general" {
		t.Fatalf("open: %q", h.m.cur)
	}
	typing(bob, "#general")
	if s := status(); !strings.Contains(s, "alice (available) · bob is typing…") {
		t.Errorf("one typing: status line %q", s)
	}
	typing(carol, "#general")
	if s := status(); !strings.Contains(s, "bob and carol are typing…") {
		t.Errorf("two typing: status line %q", s)
	}
	golden(t, "room-typing-80x24", h.screen())
	now = now.Add(time.Second)
	typing(dave, "#general")
	if s := status(); !strings.Contains(s, "several people are typing…") {
		t.Errorf("three typing: status line %q", s)
	}
	h.deliver(msgEvent(9, "g10", bob, ref("#general", "#general"), "done", time.Hour, "#general"))
	if s := status(); !strings.Contains(s, "carol and dave are typing…") {
		t.Errorf("after bob's message: status line %q", s)
	}
	now = now.Add(5*time.Second + time.Millisecond) // carol's 6 s are over, dave's not
	if s := status(); !strings.Contains(s, "dave is typing…") || strings.Contains(s, "carol") {
		t.Errorf("after carol's 6 s: status line %q", s)
	}
	h.keys("alt+2") // #ops
	if s := status(); strings.Contains(s, "typing") {
		t.Errorf("in #ops the status line says %q", s)
	}
	h.keys("alt+3") // bob: his direct conversation, not the room
	typing(bob, "#ops")
	if s := status(); strings.Contains(s, "typing") {
		t.Errorf("bob typing in #ops shows in his direct conversation: %q", s)
	}
	typing(bob, "#random") // not joined
	for k := range h.m.typingFrom {
		if k.conv == "#random" {
			t.Errorf("an indicator for a room alice is not in was kept")
		}
	}
	for i := range 2 * maxTypingPeers {
		// Straight to Update: the redraw each asks for in 6 s is not waited for.
		h.m.Update(eventMsg{api.Typing{Type: api.TypeTyping, Peer: ref(fmt.Sprintf("STRANGER%044d", i), "x"), Room: "#general"}})
	}
	if n := len(h.m.typingFrom); n > maxTypingPeers {
		t.Errorf("%d typists held, the bound is %d", n, maxTypingPeers)
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
	f.peers = append(f.peers, api.Peer{ID: evilID, Name: evil.Name, State: "available", Reachable: true})
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
