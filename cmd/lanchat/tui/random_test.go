package tui

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"lanchat/node/api"
)

// A long random mix of keys, pastes, resizes and events never panics
// and always draws exactly the terminal: its rows, none wider.
func TestRandomUse(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"enter", "tab", "esc", "backspace", "up", "down", "pgup", "pgdown", "f1", "f2",
		"ctrl+k", "ctrl+n", "ctrl+p", "alt+a", "alt+1", "alt+3", "alt+9", "ctrl+home", "ctrl+end", "alt+enter", "?"}
	words := []string{"hi", "/msg bob yo", "/join r", "/leave", "/who", "/away", "/status busy", "/search notes", "/nope", "//x", "@b", "#o",
		"/accept", "/decline", "/file /", "/file /nonexistent"}
	people := []api.PeerRef{ref(bobID, "bob"), ref(carolID, "carol"), ref(daveID, "dave")}
	w, ht := 80, 24
	for step := range 500 {
		switch r := rng.IntN(100); {
		case r < 40:
			h.keys(keys[rng.IntN(len(keys))])
		case r < 60:
			h.typeText(words[rng.IntN(len(words))])
		case r < 63:
			w, ht = 40+rng.IntN(160), 10+rng.IntN(50)
			h.send(tea.WindowSizeMsg{Width: w, Height: ht})
		case r < 65:
			h.send(tea.PasteMsg{Content: "pasted\nlines\x1b[2J\ttab"})
		case r < 85:
			p := people[rng.IntN(len(people))]
			to, room := ref(aliceID, "alice"), ""
			if rng.IntN(2) == 0 {
				to, room = ref("#general", "#general"), "#general"
			}
			var mentions []string
			if rng.IntN(4) == 0 {
				mentions = []string{aliceID}
			}
			h.deliver(eventMsg{api.Message{ID: fmt.Sprint("r", step), From: p, To: to, Text: strings.Repeat("word ", rng.IntN(40)),
				Time: base.Add(72*time.Hour + time.Duration(step)*time.Second), Room: room, Mentions: mentions}})
		case r < 92:
			p := people[rng.IntN(len(people))]
			states := []string{"available", "away", "busy", "offline", "left"}
			h.send(eventMsg{api.Presence{Peer: p, State: states[rng.IntN(len(states))], StatusText: "s", Change: api.ChangeStatus,
				Reachable: rng.IntN(3) > 0, SeenBy: rng.IntN(3)}})
		case r < 94:
			h.send(eventMsg{api.Receipt{ID: fmt.Sprint("r", rng.IntN(step+1)), State: "read"}})
		case r < 97:
			// Files and typing: an offer, a transfer in any state, an indicator.
			p := people[rng.IntN(len(people))]
			id := fmt.Sprintf("%016x", rng.IntN(8))
			states := []string{api.TransferOffered, api.TransferWaiting, api.TransferActive, api.TransferDone, api.TransferDeclined, api.TransferFailed}
			dir := []string{"in", "out"}[rng.IntN(2)]
			names := []string{strings.Repeat("name ", rng.IntN(30)), "b"}
			switch rng.IntN(3) {
			case 0:
				h.send(eventMsg{api.FileOffer{ID: id, From: p, Names: names, Files: 2, Total: int64(rng.IntN(1 << 30))}})
			case 1:
				h.send(eventMsg{api.TransferChange{Transfer: api.Transfer{ID: id, Direction: dir, Peer: p, Names: names, Files: 2,
					Total: 1 << 20, Done: int64(rng.IntN(1 << 21)), State: states[rng.IntN(len(states))], Error: "e",
					Current: "x", Updated: base.Add(time.Duration(step) * time.Second)}}})
			default:
				h.send(eventMsg{api.Typing{Peer: p, Room: []string{"", "#general", "#ops"}[rng.IntN(3)]}})
			}
		case r < 98:
			h.send(eventMsg{api.Resync{}}, eventMsg{f.snapshot()})
		default:
			h.send(streamEndMsg{api.ErrClosed})
		}
		if h.quit {
			h.quit, h.m.quitting = false, false
		}
		lines := strings.Split(h.plain(), "\n")
		if len(lines) != ht {
			t.Fatalf("step %d at %d×%d: %d rows:\n%s", step, w, ht, len(lines), h.plain())
		}
		for i, l := range lines {
			if cw := ansi.StringWidth(l); cw > w {
				t.Fatalf("step %d at %d×%d: row %d is %d wide: %q", step, w, ht, i, cw, l)
			}
		}
	}
}
