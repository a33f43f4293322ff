package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"lanchat/node/api"
)

func TestRoomArg(t *testing.T) {
	for _, tc := range []struct {
		name string
		arg  string
		bare bool
		want string // "" for an error
		why  string // in the error
	}{
		{"with #", "#general", false, "#general", ""},
		{"bare allowed", "general", true, "#general", ""},
		{"# where bare is allowed", "#ops", true, "#ops", ""},
		{"every allowed character", "#a-z_0.9", false, "#a-z_0.9", ""},
		{"64 characters", "#" + strings.Repeat("x", 64), false, "#" + strings.Repeat("x", 64), ""},
		{"65 characters", "#" + strings.Repeat("x", 65), false, "", "65 bytes long"},
		{"65 characters bare", strings.Repeat("x", 65), true, "", "65 bytes long"},
		{"upper case", "#Ops", true, "", "lower case: #ops"},
		{"space", "#dev team", true, "", "space"},
		{"only #", "#", true, "", "no name"},
		{"empty", "", true, "", "no name"},
		{"# inside", "#a#b", false, "", "'#' inside"},
		{"## at the start", "##ops", true, "", "'#' inside"},
		{"unicode", "#café", false, "", `'é' is not allowed`},
		{"slash", "#a/b", false, "", `'/' is not allowed`},
		{"control character", "#a\x1b[2J", false, "", `'\x1b' is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := roomArg(tc.arg, tc.bare)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("roomArg(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "1 to 64 of a-z") {
				t.Fatalf("roomArg(%q) = %q, %v; want an error saying %q and the rule", tc.arg, got, err, tc.why)
			}
			if strings.ContainsRune(err.Error(), '\x1b') {
				t.Fatalf("the error carries the raw escape: %q", err)
			}
		})
	}
}

// TestBadRoomNamesRefusedBeforeAnyRequest: a name that is not a room
// name is a usage error, and the node is never asked anything.
func TestBadRoomNamesRefusedBeforeAnyRequest(t *testing.T) {
	f := newFakeNode()
	dir := served(t, f)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"join upper case", []string{"join", "#General"}, "lower case"},
		{"join with a space", []string{"join", "dev team"}, "space"},
		{"join too long", []string{"join", strings.Repeat("a", 65)}, "65 bytes"},
		{"join nothing (an unquoted #)", []string{"join"}, "quote a room name"},
		{"join two", []string{"join", "a", "b"}, "one room at a time"},
		{"leave upper case", []string{"leave", "#OPS"}, "lower case"},
		{"leave nothing", []string{"leave"}, "quote a room name"},
		{"peers --room bad", []string{"peers", "--room", "#a b"}, "space"},
		{"peers --room empty", []string{"peers", "--room", ""}, "which room"},
		{"send to a bad room", []string{"send", "#Gen", "hi"}, "lower case"},
		{"send to #", []string{"send", "#", "hi"}, "no name"},
		{"send nothing (an unquoted #)", []string{"send"}, "'#general'"},
		{"history of a bad room", []string{"history", "#a/b"}, "not a room name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := lanchat(t, dir, tc.args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errs, tc.want)
			}
		})
	}
	if calls := f.callLog(); len(calls) > 0 {
		t.Errorf("the node was asked %v", calls)
	}
}

func TestJoinAndLeave(t *testing.T) {
	f := newFakeNode()
	dir := served(t, f)
	for _, tc := range []struct {
		name string
		args []string
		room string
		out  string
	}{
		{"join bare", []string{"join", "ops"}, "#ops", "joined #ops: 3 of 5 members online\n"},
		{"join with #", []string{"join", "#ops"}, "#ops", "joined #ops: 3 of 5 members online\n"},
		{"join --json", []string{"join", "--json", "dev.team_2"}, "#dev.team_2",
			`{"name":"#dev.team_2","joined":true,"members_online":3,"members_total":5,"unread":0,"retention":0}` + "\n"},
		{"leave", []string{"leave", "#ops"}, "#ops", "left #ops; its history stays (lanchat history '#ops')\n"},
		{"leave --json", []string{"--json", "leave", "general"}, "#general",
			`{"name":"#general","joined":false,"members_online":2,"members_total":4,"unread":0,"retention":0}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := lanchat(t, dir, tc.args...)
			if code != exitOK || out != tc.out {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errs, tc.out)
			}
			if f.roomReq.Room != tc.room {
				t.Errorf("the node got %+v, want room %s", f.roomReq, tc.room)
			}
		})
	}
	t.Run("leave a room not joined", func(t *testing.T) {
		f.setErr("LeaveRoom", api.Errorf(api.CodeNotFound, "not in #zed"))
		code, _, errs := lanchat(t, dir, "leave", "zed")
		if code != exitFail || !strings.Contains(errs, "you are not in #zed") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})
	t.Run("leave a room not joined, said as not_member", func(t *testing.T) {
		f.setErr("LeaveRoom", api.Errorf(api.CodeNotMember, "not a member of that room #zed"))
		code, _, errs := lanchat(t, dir, "leave", "zed")
		if code != exitFail || !strings.Contains(errs, "you are not in #zed") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})
	t.Run("join refused by the node", func(t *testing.T) {
		f.setErr("JoinRoom", api.Errorf(api.CodeFailed, "disk full"))
		code, _, errs := lanchat(t, dir, "join", "ops")
		if code != exitFail || errs != "lanchat: disk full\n" {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestRoomsListsYoursFirst(t *testing.T) {
	f := newFakeNode()
	f.rooms = []api.Room{
		{Name: "#alpha", MembersOnline: 1, MembersTotal: 2},
		{Name: "#general", Joined: true, MembersOnline: 3, MembersTotal: 5, Unread: 2, Retention: 30 * 86400},
		{Name: "#beta", Joined: true, MembersOnline: 1, MembersTotal: 1},
		{Name: "#evil\x1b[2J", MembersOnline: 1, MembersTotal: 1},
	}
	dir := served(t, f)
	code, out, errs := lanchat(t, dir, "rooms")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "ROOM          JOINED  ONLINE  UNREAD  KEEPS\n" +
		"#beta         yes     1/1     0       for ever\n" +
		"#general      yes     3/5     2       30 days\n" +
		"#alpha        no      1/2     0       for ever\n" +
		"#evil\\x1b[2J  no      1/1     0       for ever\n"
	if out != want {
		t.Errorf("rooms:\n%s\nwant:\n%s", out, want)
	}

	code, out, _ = lanchat(t, dir, "rooms", "--json")
	var got []roomOutput
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"#beta", "#general", "#alpha", "#evil\x1b[2J"}) || got[1] != (roomOutput{"#general", true, 3, 5, 2, 30 * 86400}) {
		t.Errorf("rooms --json: %+v", got)
	}

	f.rooms = nil
	code, out, _ = lanchat(t, dir, "rooms", "--json")
	if code != exitOK || out != "[]\n" {
		t.Errorf("rooms --json with none: %d %q", code, out)
	}
	code, out, _ = lanchat(t, dir, "rooms")
	if code != exitOK || !strings.Contains(out, "no room") {
		t.Errorf("rooms with none: %d %q", code, out)
	}
}

func TestPeersOfARoom(t *testing.T) {
	f := newFakeNode()
	dir := served(t, f)
	code, out, errs := lanchat(t, dir, "peers", "--room", "general")
	want := "NAME         ID       STATE\n" +
		"alice (you)  SSSSSSS  available\n" +
		"bob          BBBBBBB  away\n" +
		"carl         CCCCCCC  offline\n" +
		"#general: 2 of 3 online\n"
	if code != exitOK || out != want {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
	if f.membersOf != "#general" {
		t.Errorf("asked for the members of %q", f.membersOf)
	}

	code, out, _ = lanchat(t, dir, "peers", "--json", "--room=#general")
	var got []memberOutput
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got) != 3 {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if got[0] != (memberOutput{ID: selfID, Name: "alice", State: "available", Online: true, You: true}) ||
		got[2] != (memberOutput{ID: carlID, Name: "carl", State: "offline"}) {
		t.Errorf("peers --room --json: %+v", got)
	}

	t.Run("from LANCHAT_ROOM", func(t *testing.T) {
		t.Setenv("LANCHAT_ROOM", "#general")
		code, out, _ := lanchat(t, dir, "peers", "--json")
		if code != exitOK || !strings.Contains(out, `"you":true`) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("not a member", func(t *testing.T) {
		code, _, errs := lanchat(t, dir, "peers", "--room", "ops")
		if code != exitFail || errs != "lanchat: not a member of #ops (lanchat join ops)\n" {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestSendToARoom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		online  int
		reached int
		code    int
		out     string
	}{
		{"some have it", []string{"#general", "standup", "in", "5"}, 4, 3, exitOK, "sent to #general: 3 of 4 online members have it\n"},
		{"all have it", []string{"#general", "hi"}, 4, 4, exitOK, "sent to #general: all 4 online members have it\n"},
		{"one of several", []string{"#general", "hi"}, 3, 1, exitOK, "sent to #general: 1 of 3 online members has it\n"},
		{"the only other", []string{"#general", "hi"}, 1, 1, exitOK, "sent to #general: the one other member online has it\n"},
		{"nobody else online", []string{"#general", "hi"}, 0, 0, exitOK, "sent to #general: no other member is online now; members get it when they are back\n"},
		{"wait: all have it", []string{"--wait", "#general", "hi"}, 4, 4, exitOK, "sent to #general: all 4 online members have it\n"},
		{"wait: nobody else online", []string{"--wait", "#general", "hi"}, 0, 0, exitOK, "sent to #general: no other member is online now; members get it when they are back\n"},
		{"wait ran out", []string{"--wait", "--timeout", "2s", "#general", "hi"}, 4, 3, exitQueued, "sent to #general: 3 of 4 online members have it\n"},
		{"json", []string{"--json", "#general", "hi"}, 4, 3, exitOK, `{"id":"m9","room":"#general","state":"sent","online":4,"reached":3}` + "\n"},
		{"json, wait ran out", []string{"--json", "--wait", "#general", "hi"}, 2, 0, exitQueued, `{"id":"m9","room":"#general","state":"sent","online":2,"reached":0}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode()
			f.sendReply = api.SendReply{ID: "m9", To: generalRef, State: "sent", Room: "#general", Online: tc.online, Reached: tc.reached}
			dir := served(t, f)
			code, out, errs := lanchat(t, dir, append([]string{"send"}, tc.args...)...)
			if code != tc.code || out != tc.out {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, %q", code, out, errs, tc.code, tc.out)
			}
			if tc.code == exitQueued && !strings.Contains(tc.name, "json") && !strings.Contains(errs, "--wait ran out") {
				t.Errorf("stderr %q does not say --wait ran out", errs)
			}
			req := f.sendReq
			wait := slices.Contains(tc.args, "--wait")
			if req.To != "#general" || req.Wait != wait || (strings.Contains(tc.name, "ran out") && !strings.Contains(tc.name, "json") && req.TimeoutMS != 2000) {
				t.Errorf("the node got %+v", req)
			}
		})
	}
	t.Run("a room's name without its #", func(t *testing.T) {
		f := newFakeNode()
		f.setErr("Send", &api.Error{Code: api.CodeUnknownRecipient, Message: `nobody called "general"`})
		dir := served(t, f)
		code, _, errs := lanchat(t, dir, "send", "general", "hi")
		if code != exitFail || !strings.Contains(errs, `nobody called "general"`) || !strings.Contains(errs, "write '#general', quoted") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
		if f.sendReq.To != "general" {
			t.Errorf("sent to %q: a bare name is a person's", f.sendReq.To)
		}
	})
	t.Run("not a member", func(t *testing.T) {
		f := newFakeNode()
		f.setErr("Send", api.Errorf(api.CodeNotMember, "not a member of #ops"))
		dir := served(t, f)
		code, _, errs := lanchat(t, dir, "send", "#ops", "hi")
		if code != exitFail || errs != "lanchat: not a member of #ops (join it first: lanchat join ops)\n" {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
	t.Run("a direct send is as before", func(t *testing.T) {
		f := newFakeNode()
		f.sendReply = api.SendReply{ID: "m1", To: bobRef, State: "delivered"}
		dir := served(t, f)
		code, out, _ := lanchat(t, dir, "send", "--json", "bob", "hi")
		if code != exitOK || out != `{"id":"m1","to":{"id":"`+bobID+`","name":"bob"},"state":"delivered"}`+"\n" {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
}

func TestHistoryOfARoom(t *testing.T) {
	f := newFakeNode()
	t1 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f.history = []api.HistoryEntry{
		{ID: "j1", From: bobRef, To: generalRef, Time: t1, State: "delivered", Room: "#general", Kind: "join"},
		{ID: "m1", From: bobRef, To: generalRef, Text: "@alice @carl lunch?", Time: t1.Add(time.Second), State: "delivered",
			Room: "#general", Kind: "text", Mentions: []string{carlID, selfID}},
		{ID: "m2", From: selfRef, To: generalRef, Text: "yes\x1b[2J\nat noon", Time: t1.Add(2 * time.Second), Outgoing: true, State: "sent",
			Room: "#general", Kind: "text"},
		{ID: "l1", From: api.PeerRef{ID: bobID, Name: "bob\u202e"}, To: generalRef, Time: t1.Add(3 * time.Second), State: "delivered", Room: "#general", Kind: "leave"},
		{ID: "d1", From: bobRef, To: selfRef, Text: "direct", Time: t1.Add(4 * time.Second), State: "read"},
		{ID: "r1", From: bobRef, To: generalRef, Text: "86400", Time: t1.Add(5 * time.Second), State: "read", Room: "#general", Kind: "retention"},
	}
	dir := served(t, f)
	code, out, errs := lanchat(t, dir, "history", "#general")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	ts := func(d time.Duration) string { return t1.Add(d).Local().Format("2006-01-02 15:04:05") }
	want := ts(0) + " * bob joined #general\n" +
		ts(time.Second) + " [#general] bob: @alice @carl lunch?  (mentions you, CCCCCCC)\n" +
		ts(2*time.Second) + " [#general] alice: yes\\x1b[2J\n    at noon  [sent]\n" +
		ts(3*time.Second) + " * bob\\u202e left #general\n" +
		ts(4*time.Second) + " bob: direct\n" +
		ts(5*time.Second) + " * bob set #general to keep 1 day\n"
	if out != want {
		t.Errorf("history:\n%s\nwant:\n%s", out, want)
	}
	if f.histQ.Peer != "#general" || !f.histQ.MarkRead {
		t.Errorf("query %+v, want peer #general, marked read", f.histQ)
	}

	code, out, _ = lanchat(t, dir, "history", "--json", "#general")
	var got []historyOutput
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got) != 6 {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if got[0].Kind != "join" || got[0].Room != "#general" || !slices.Equal(got[1].Mentions, []string{carlID, selfID}) || got[4].Room != "" || got[5].Kind != "retention" || got[5].Text != "86400" {
		t.Errorf("history --json: %+v", got)
	}
	if strings.Contains(out, `"kind":""`) || !strings.Contains(out, `"kind":"text"`) || strings.Contains(out, "\u202e") {
		t.Errorf("history --json: %s", out)
	}
	if f.histQ.MarkRead {
		t.Error("--json marked messages read")
	}
}

func TestRetention(t *testing.T) {
	f := newFakeNode()
	dir := served(t, f)
	for _, tc := range []struct {
		args []string
		room string
		secs int64
		out  string
	}{
		{[]string{"retention", "ops", "30d"}, "#ops", 30 * 86400, "#ops now keeps 30 days; its members delete what is older\n"},
		{[]string{"retention", "#ops", "36h"}, "#ops", 36 * 3600, "#ops now keeps 36 hours; its members delete what is older\n"},
		{[]string{"retention", "#ops", "90m"}, "#ops", 90 * 60, "#ops now keeps 90 minutes; its members delete what is older\n"},
		{[]string{"retention", "general", "forever"}, "#general", 0, "#general now keeps for ever; its members delete what is older\n"},
		{[]string{"--json", "retention", "ops", "1d"}, "#ops", 86400,
			`{"name":"#ops","joined":true,"members_online":1,"members_total":2,"unread":0,"retention":86400}` + "\n"},
	} {
		code, out, errs := lanchat(t, dir, tc.args...)
		if code != exitOK || out != tc.out {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errs, tc.out)
		}
		if f.retReq != (api.RetentionRequest{Room: tc.room, Retention: tc.secs}) {
			t.Errorf("%q: the node got %+v", tc.args, f.retReq)
		}
	}
	for _, args := range [][]string{{"retention", "#ops"}, {"retention", "#ops", "soon"}, {"retention", "#ops", "-3h"}, {"retention", "#Bad", "1d"}, {"retention", "#ops", "1.5s"}} {
		f.retReq = api.RetentionRequest{}
		if code, _, errs := lanchat(t, dir, args...); code != exitUsage || errs == "" {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errs)
		}
		if f.retReq != (api.RetentionRequest{}) {
			t.Errorf("%q reached the node: %+v", args, f.retReq)
		}
	}
}
