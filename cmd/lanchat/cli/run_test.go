package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"lanchat/node/api"
)

// roomEvents are what a node says while a room is busy.
func roomEvents() []api.Event {
	t1 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	general := api.Room{Name: "#general", Joined: true, MembersOnline: 3, MembersTotal: 5}
	return []api.Event{
		api.RoomChange{Seq: 2, Room: general, Peer: bobRef, Change: api.RoomJoined},
		api.Message{Seq: 3, ID: "m1", From: bobRef, To: generalRef, Text: "@alice @carl lunch?", Time: t1,
			Room: "#general", Mentions: []string{selfID, carlID}},
		api.Message{Seq: 4, ID: "m2", From: selfRef, To: generalRef, Text: "yes", Time: t1, Outgoing: true, Room: "#general"},
		api.Message{Seq: 5, ID: "m3", From: api.PeerRef{ID: carlID, Name: "carl\x1b[31m"}, To: generalRef, Text: "\u202eoops\nforged line", Time: t1,
			Room: "#general", Mentions: []string{bobID}},
		api.RoomChange{Seq: 6, Room: api.Room{Name: "#general", Joined: true, MembersOnline: 1, MembersTotal: 1}, Peer: bobRef, Change: api.RoomLeft},
		api.RoomChange{Seq: 7, Room: api.Room{Name: "#ops", Joined: true, MembersOnline: 2, MembersTotal: 2, Unread: 4}, Peer: selfRef, Change: api.RoomJoined},
		api.RoomChange{Seq: 8, Room: api.Room{Name: "#ops"}, Peer: selfRef, Change: api.RoomLeft},
		api.RoomChange{Seq: 9, Room: api.Room{Name: "#general", Joined: true, Retention: 30 * 86400}, Peer: bobRef, Change: api.RoomRetention},
		api.RoomChange{Seq: 10, Room: api.Room{Name: "#general", Joined: true}, Peer: selfRef, Change: api.RoomRetention},
	}
}

func TestRunPrintsRooms(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&env{g: &globalArgs{}, stdout: &out})
	p.learn(api.Snapshot{Self: api.Self{ID: selfID, Name: "alice"}, Peers: []api.Peer{{ID: carlID, Name: "carl"}}})
	for _, ev := range roomEvents() {
		p.print(ev)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if len(l) > 9 && l[2] == ':' && l[5] == ':' {
			l = l[9:] // the time
		}
		lines = append(lines, l)
	}
	want := []string{
		"* bob (BBBBBBB) joined #general (3 of 5 members online)",
		"[#general] bob: @alice @carl lunch?  (mentions you, carl)",
		"[#general] alice: yes",
		`[#general] carl\x1b[31m: \u202eoops`,
		"    forged line  (mentions bob)",
		"* bob (BBBBBBB) left #general (1 of 1 member online)",
		"* you joined #ops (2 of 2 members online, 4 unread)",
		"* you left #ops (no members)",
		"* bob (BBBBBBB) set #general to keep 30 days",
		"* you set #general to keep for ever",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("run printed:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunJSONCarriesRooms(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&env{g: &globalArgs{json: true}, stdout: &out})
	for _, ev := range roomEvents() {
		p.print(ev)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(roomEvents()) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(roomEvents()), out.String())
	}
	for i, l := range lines {
		ev, err := api.DecodeEvent([]byte(l))
		if err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if ev.EventSeq() != roomEvents()[i].EventSeq() {
			t.Errorf("line %d is seq %d", i, ev.EventSeq())
		}
		if strings.ContainsAny(l, "\x1b\u202e") {
			t.Errorf("line %d carries a raw escape: %q", i, l)
		}
	}
	var m struct {
		Room     string   `json:"room"`
		Mentions []string `json:"mentions"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || m.Room != "#general" || len(m.Mentions) != 2 {
		t.Errorf("room message as JSON: %s (%v)", lines[1], err)
	}
	if !strings.HasPrefix(lines[0], `{"type":"room","seq":2,"room":{"name":"#general"`) || !strings.HasSuffix(lines[0], `"change":"joined"}`) {
		t.Errorf("room event as JSON: %s", lines[0])
	}
}
