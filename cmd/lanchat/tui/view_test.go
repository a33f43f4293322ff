package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"lanchat/node/api"
)

// The screens a person sees, at the smallest size and larger, against
// golden files (go test -args -update rewrites them).
func TestViewGolden(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	golden(t, "start-80x24", h.screen())

	h.keys("alt+3") // bob, third in the sidebar
	golden(t, "direct-80x24", h.screen())

	h.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	golden(t, "direct-120x30", h.screen())

	h.keys("f2")
	golden(t, "no-sidebar-120x30", h.screen())

	h.keys("f2", "f1")
	golden(t, "help-120x30", h.screen())

	h.keys("esc", "ctrl+k")
	h.typeText("ra")
	golden(t, "switcher-120x30", h.screen())
}

// Every screen fills the terminal exactly: as many rows as it has, none
// wider than it, whatever the size.
func TestViewFitsEverySize(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	for _, size := range [][2]int{{80, 24}, {81, 25}, {100, 40}, {200, 60}, {60, 20}, {40, 12}} {
		h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		for _, k := range []string{"", "alt+3", "f1", "esc", "ctrl+k", "esc", "alt+1"} {
			if k != "" {
				h.keys(k)
			}
			lines := strings.Split(h.plain(), "\n")
			if len(lines) != size[1] {
				t.Errorf("%dx%d after %q: %d rows", size[0], size[1], k, len(lines))
			}
			for i, l := range lines {
				if w := displayWidth(l); w > size[0] {
					t.Errorf("%dx%d after %q: row %d is %d wide: %q", size[0], size[1], k, i, w, l)
				}
			}
		}
	}
}

func displayWidth(s string) int {
	n := 0
	for range s {
		n++ // the fixture has no wide characters
	}
	return n
}

// Wide characters (CJK, emoji) and long words are wrapped by their
// width on screen: no row is wider than the terminal.
func TestViewWideText(t *testing.T) {
	f := newFake()
	f.peers = append(f.peers, api.Peer{ID: "ZHANG" + strings.Repeat("Z", 47), Name: "张伟🙂", State: "available", StatusText: "会议中 🗓️ until three", Reachable: true})
	f.hist["#general"] = append(f.hist["#general"], api.HistoryEntry{
		ID: "w1", From: ref("ZHANG"+strings.Repeat("Z", 47), "张伟🙂"), To: ref("#general", "#general"), Room: "#general", Kind: "text",
		Text: strings.Repeat("你好世界🙂", 20) + " " + strings.Repeat("supercalifragilistic", 6), Time: base.Add(50 * time.Hour), State: "read",
	})
	h := newHarness(t, f, 80, 24)
	for _, w := range []int{80, 61, 100} {
		h.send(tea.WindowSizeMsg{Width: w, Height: 24})
		lines := strings.Split(h.plain(), "\n")
		for i, l := range lines {
			if cw := ansi.StringWidth(l); cw > w {
				t.Errorf("width %d: row %d is %d cells: %q", w, i, cw, l)
			}
		}
		if s := h.plain(); !strings.Contains(s, "张伟🙂:") || !strings.Contains(s, "你好世界🙂你好") || !strings.Contains(s, "会议中") {
			t.Errorf("width %d: the wide message is not shown:\n%s", w, h.plain())
		}
	}
}

// The help shows every key and command at the smallest size, 80×24.
func TestHelpFits80x24(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	_, _, body := h.m.layout()
	if len(helpText) > body {
		t.Errorf("the help has %d lines, the screen's body %d", len(helpText), body)
	}
	h.keys("f1")
	if s := h.plain(); !strings.Contains(s, "/accept, /decline [id]") {
		t.Errorf("the help's last line is cut off at 80×24:\n%s", s)
	}
}
