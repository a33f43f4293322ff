package tui

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"lanchat/node/api"
)

func msgEvent(seq uint64, id string, from, to api.PeerRef, text string, at time.Duration, room string, mentions ...string) eventMsg {
	return eventMsg{api.Message{Type: api.TypeMessage, Seq: seq, ID: id, From: from, To: to, Text: text,
		Time: base.Add(48*time.Hour + at), Room: room, Mentions: mentions}}
}

// deliver stores a message event's message in the fake, as the node
// does before it sends the event, and sends the event.
func (h *harness) deliver(ev eventMsg) {
	h.t.Helper()
	m := ev.ev.(api.Message)
	key := m.Room
	if key == "" {
		key = m.From.ID
	}
	h.f.mu.Lock()
	h.f.hist[key] = append(h.f.hist[key], api.HistoryEntry{ID: m.ID, From: m.From, To: m.To, Text: m.Text, Time: m.Time,
		State: "delivered", Room: m.Room, Kind: "text", Mentions: m.Mentions})
	h.f.mu.Unlock()
	h.send(ev)
}

func sidebarRow(t *testing.T, h *harness, name string) string {
	t.Helper()
	for _, l := range strings.Split(h.plain(), "\n") {
		side, _, _ := strings.Cut(l, "│")
		if strings.Contains(side, " "+name) {
			return strings.TrimSpace(side)
		}
	}
	t.Fatalf("no %s in the sidebar:\n%s", name, h.plain())
	return ""
}

// A new direct message or a mention elsewhere raises the unread count and
// rings the bell; a room's ordinary message only counts; one in the open
// conversation is shown, marked read, and counts nothing.
func TestLiveMessages(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	alice, bob, dave := ref(aliceID, "alice"), ref(bobID, "bob"), ref(daveID, "dave")
	ops := ref("#ops", "#ops")

	h.deliver(msgEvent(2, "d1", dave, alice, "are you there?", 0, ""))
	if h.bells != 1 {
		t.Errorf("a direct message elsewhere: %d bells, want 1", h.bells)
	}
	if row := sidebarRow(t, h, "dave"); !strings.HasSuffix(row, "1") {
		t.Errorf("dave's row %q: want an unread count of 1", row)
	}

	h.deliver(msgEvent(3, "o1", bob, ops, "deploying", time.Minute, "#ops"))
	if h.bells != 1 {
		t.Errorf("a room message without a mention rang the bell (%d bells)", h.bells)
	}
	if row := sidebarRow(t, h, "#ops"); !strings.HasSuffix(row, "1") {
		t.Errorf("#ops row %q: want 1 unread", row)
	}
	h.deliver(msgEvent(4, "o2", bob, ops, "@alice ok?", 2*time.Minute, "#ops", aliceID))
	if h.bells != 2 {
		t.Errorf("a mention elsewhere: %d bells, want 2", h.bells)
	}
	if row := sidebarRow(t, h, "#ops"); !strings.HasSuffix(row, "2@") {
		t.Errorf("#ops row %q: want 2 unread and the mention mark", row)
	}

	gen := ref("#general", "#general")
	h.deliver(msgEvent(5, "g9", bob, gen, "coffee?", 3*time.Minute, "#general"))
	if !strings.Contains(h.plain(), "bob: coffee?") {
		t.Errorf("a message in the open room is not shown:\n%s", h.plain())
	}
	if !slices.Contains(f.read, "g9") {
		t.Errorf("a message shown in the open room was not marked read (read: %v)", f.read)
	}
	if h.bells != 2 {
		t.Errorf("the open conversation rang the bell")
	}

	// Alt-A goes to the mention first, then to the direct message.
	h.keys("alt+a")
	if h.m.cur != "#ops" {
		t.Errorf("Alt-A opened %q, want #ops (a mention)", h.m.cur)
	}
	if !slices.Contains(f.read, "o2") {
		t.Errorf("opening #ops did not mark its messages read: %v", f.read)
	}
	if row := sidebarRow(t, h, "dave"); !strings.HasSuffix(row, "1") {
		t.Errorf("dave's unread went away before it was seen: %q", row)
	}
	h.keys("alt+a")
	if h.m.cur != bobID {
		t.Errorf("Alt-A opened %q, want bob (unread from before)", h.m.cur)
	}
	h.keys("alt+a")
	if h.m.cur != daveID {
		t.Errorf("Alt-A opened %q, want dave", h.m.cur)
	}
	h.keys("alt+a")
	if h.m.cur != daveID || h.m.notice != "nothing unread" {
		t.Errorf("Alt-A with nothing unread: open %q, notice %q", h.m.cur, h.m.notice)
	}
}

// Presence, status texts, receipts and joins change what is shown.
func TestLivePresenceAndReceipts(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.send(eventMsg{api.Presence{Peer: ref(carolID, "carol"), State: "available", StatusText: "back", Change: api.ChangeReturned, Reachable: true}})
	if row := sidebarRow(t, h, "carol"); !strings.HasPrefix(row, "4 ● carol") {
		t.Errorf("carol back: row %q", row)
	}
	if !strings.Contains(h.plain(), "3 of 3 peers online") {
		t.Errorf("status bar does not count carol online:\n%s", h.plain())
	}
	erin := ref("ERINN"+strings.Repeat("E", 47), "erin")
	h.send(eventMsg{api.Presence{Peer: erin, State: "available", Change: api.ChangeJoined, Reachable: true}})
	if row := sidebarRow(t, h, "erin"); !strings.Contains(row, "● erin") {
		t.Errorf("a new peer: row %q", row)
	}
	h.send(eventMsg{api.RoomChange{Room: api.Room{Name: "#general", Joined: true, MembersOnline: 4, MembersTotal: 5}, Peer: erin, Change: api.RoomJoined}})
	if s := h.plain(); !strings.Contains(s, "* erin joined") || !strings.Contains(s, "4 of 5 members online") {
		t.Errorf("a join in the open room:\n%s", s)
	}

	h.keys("alt+3") // bob
	if !strings.Contains(h.plain(), "see you there ✓✓ ") {
		t.Fatalf("fixture: b3 delivered:\n%s", h.plain())
	}
	h.send(eventMsg{api.Receipt{ID: "b3", State: "read", Peer: ref(bobID, "bob")}})
	h.send(eventMsg{api.Receipt{ID: "b4", State: "delivered", Peer: ref(bobID, "bob")}})
	s := h.plain()
	if !strings.Contains(s, "see you there ✓✓ read") || !strings.Contains(s, "bring the notes ✓✓") {
		t.Errorf("receipts not shown:\n%s", s)
	}
}

// Typing, sending, history, a line with a newline, a paste of several
// lines, and commands.
func TestInputAndCommands(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.typeText("hello")
	h.keys("alt+enter")
	h.typeText("world")
	h.keys("enter")
	if len(f.sent) != 1 || f.sent[0] != (api.SendRequest{To: "#general", Text: "hello\nworld"}) {
		t.Fatalf("sent %+v", f.sent)
	}
	if h.m.input.Value() != "" {
		t.Errorf("input not cleared: %q", h.m.input.Value())
	}
	h.send(tea.PasteMsg{Content: "one\r\ntwo\tthree\x1b[31m"})
	if got := h.m.input.Value(); got != "one\ntwo    three[31m" {
		t.Errorf("paste gave %q", got)
	}
	if lines := strings.Split(h.plain(), "\n"); len(lines) != 24 || !strings.HasPrefix(lines[22], "> one") {
		t.Errorf("a two-line input: rows %d, input %q", len(lines), lines[len(lines)-2:])
	}
	h.keys("ctrl+c")
	if h.m.input.Value() != "" || h.quit {
		t.Errorf("Ctrl-C on a line: value %q, quit %v", h.m.input.Value(), h.quit)
	}
	h.keys("up")
	if got := h.m.input.Value(); got != "hello\nworld" {
		t.Errorf("Up: %q, want the line sent", got)
	}
	h.keys("ctrl+c")

	h.typeText("/msg bob lunch at 1?")
	h.keys("enter")
	if h.m.cur != bobID || f.sent[len(f.sent)-1] != (api.SendRequest{To: bobID, Text: "lunch at 1?"}) {
		t.Errorf("/msg: open %q, sent %+v", h.m.cur, f.sent)
	}
	h.typeText("/status away in a meeting")
	h.keys("enter")
	if len(f.status) != 1 || f.status[0] != (api.StatusRequest{State: "away", Text: "in a meeting"}) {
		t.Errorf("/status: %+v", f.status)
	}
	if !strings.Contains(h.plain(), "alice (away: in a meeting)") {
		t.Errorf("own status not shown:\n%s", h.plain())
	}
	h.typeText("/away")
	h.keys("enter")
	if f.status[len(f.status)-1].State != "available" {
		t.Errorf("/away when away: %+v, want back to available", f.status)
	}
	h.typeText("/join ops2")
	h.keys("enter")
	if !slices.Equal(f.joined, []string{"#ops2"}) || h.m.cur != "#ops2" {
		t.Errorf("/join: joined %v, open %q", f.joined, h.m.cur)
	}
	for _, c := range []string{"/accept", "/decline"} {
		h.typeText(c)
		h.keys("enter")
		if h.m.notice != "no offer is waiting" {
			t.Errorf("%s with no offer: notice %q", c, h.m.notice)
		}
		h.keys("ctrl+c")
	}
	h.typeText("/frobnicate")
	h.keys("enter")
	if h.m.input.Value() != "/frobnicate" || !strings.Contains(h.m.notice, "unknown command") {
		t.Errorf("an unknown command: input %q, notice %q", h.m.input.Value(), h.m.notice)
	}
	h.keys("ctrl+c")
	h.typeText("//slash")
	h.keys("enter")
	if got := f.sent[len(f.sent)-1].Text; got != "/slash" {
		t.Errorf("//slash sent %q", got)
	}

	f.sendErr = api.Errorf(api.CodeFailed, "disk full")
	h.typeText("will fail")
	h.keys("enter")
	if h.m.input.Value() != "will fail" || !strings.Contains(h.m.notice, "disk full") {
		t.Errorf("a failed send: input %q, notice %q", h.m.input.Value(), h.m.notice)
	}
	h.keys("ctrl+c", "ctrl+c")
	if !h.quit {
		t.Error("Ctrl-C on an empty line did not quit")
	}
}

func TestSearch(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.typeText("/search notes")
	h.keys("enter")
	s := h.plain()
	if !strings.Contains(s, "Search: notes") || !strings.Contains(s, "[#general] bob: @alice can you share the notes?") ||
		!strings.Contains(s, "[bob] alice: bring the notes") {
		t.Errorf("search results:\n%s", s)
	}
	h.keys("esc")
	if h.m.mode != modeChat {
		t.Error("Esc did not close the search")
	}
}

func TestTabCompletion(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	for _, c := range []struct{ typed, want string }{
		{"/jo", "/join "},
		{"/join #o", "/join #ops "},
		{"/join ra", "/join #random "},
		{"hi @ca", "hi @carol "},
		{"/msg da", "/msg dave "},
		{"/status a", "/status available "},
	} {
		h.keys("ctrl+c")
		h.typeText(c.typed)
		h.keys("tab")
		if got := h.m.input.Value(); got != c.want {
			t.Errorf("%q + Tab = %q, want %q", c.typed, got, c.want)
		}
	}
	// Tab again cycles: /status a → available, then away.
	h.keys("tab")
	if got := h.m.input.Value(); got != "/status away " {
		t.Errorf("second Tab: %q", got)
	}
}

func TestSwitchingKeys(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	h.keys("ctrl+n")
	if h.m.cur != "#ops" {
		t.Errorf("Ctrl-N: %q", h.m.cur)
	}
	h.keys("ctrl+p", "ctrl+p")
	if h.m.cur != daveID {
		t.Errorf("Ctrl-P twice from #ops: %q, want dave (it wraps)", h.m.cur)
	}
	h.keys("alt+4")
	if h.m.cur != carolID {
		t.Errorf("Alt-4: %q", h.m.cur)
	}
	h.keys("ctrl+k")
	h.typeText("bo")
	h.keys("enter")
	if h.m.cur != bobID {
		t.Errorf("Ctrl-K bo Enter: %q", h.m.cur)
	}
	h.keys("ctrl+k")
	h.typeText("rnd")
	h.keys("enter")
	if h.m.cur != "#random" || !slices.Contains(h.f.joined, "#random") {
		t.Errorf("Ctrl-K on a room not joined: open %q, joined %v", h.m.cur, h.f.joined)
	}
	h.keys("?")
	if h.m.mode != modeHelp {
		t.Error("? on an empty line: no help")
	}
	h.keys("esc")
	h.typeText("what?")
	if h.m.mode == modeHelp || h.m.input.Value() != "what?" {
		t.Errorf("? in a line opened the help (value %q)", h.m.input.Value())
	}
}

// A long conversation is held a window at a time: PgUp pages back
// through the history with before, to its start; the screen never shows
// more than its rows.
func TestScrollPagesHistory(t *testing.T) {
	f := newFake()
	bob, alice := ref(bobID, "bob"), ref(aliceID, "alice")
	var es []api.HistoryEntry
	for i := range 1000 {
		es = append(es, api.HistoryEntry{ID: fmt.Sprintf("m%04d", i), From: bob, To: alice, Text: fmt.Sprintf("message %d", i),
			Time: base.Add(time.Duration(i) * time.Minute), State: "read"})
	}
	f.hist[bobID] = es
	h := newHarness(t, f, 80, 24)
	h.keys("alt+3")
	if !strings.Contains(h.plain(), "message 999") {
		t.Fatalf("the newest message is not shown:\n%s", h.plain())
	}
	if n := len(h.m.convs[bobID].entries); n != pageSize {
		t.Errorf("opening held %d entries, want one page (%d)", n, pageSize)
	}
	for range 200 {
		h.keys("pgup")
	}
	s := h.plain()
	if !strings.Contains(s, "start of the conversation") || !strings.Contains(s, "bob: message 0\n") && !strings.Contains(s, "bob: message 0 ") {
		t.Errorf("PgUp to the top:\n%s", s)
	}
	var befores int
	for _, q := range f.queries {
		if q.Before != "" {
			befores++
			if q.Peer != bobID || q.Limit != pageSize {
				t.Errorf("an older page asked for %+v", q)
			}
		}
	}
	if befores < 4 {
		t.Errorf("%d older pages fetched, want at least 4", befores)
	}
	h.keys("ctrl+end")
	if !strings.Contains(h.plain(), "message 999") {
		t.Errorf("Ctrl-End: not back at the newest")
	}
}

// A resync reloads everything from a new snapshot without touching the
// line being written.
func TestResyncKeepsInput(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.typeText("half a thought")
	before := len(f.queries)
	h.send(eventMsg{api.Resync{Seq: 9, Dropped: 300, Reason: "subscriber fell behind"}})
	f.peers = append(f.peers, api.Peer{ID: "ERINN" + strings.Repeat("E", 47), Name: "erin", State: "available", Reachable: true})
	h.send(eventMsg{f.snapshot()})
	if got := h.m.input.Value(); got != "half a thought" {
		t.Errorf("the input after a resync: %q", got)
	}
	if len(f.queries) <= before {
		t.Error("the snapshot after a resync fetched nothing again")
	}
	if s := h.plain(); !strings.Contains(s, "erin") || !strings.Contains(s, "bob: standup in 5") {
		t.Errorf("after the resync:\n%s", s)
	}
	if row := sidebarRow(t, h, "bob"); !strings.HasSuffix(row, " 1") {
		t.Errorf("bob's unread after a resync: %q, want still 1 (counted once)", row)
	}
}

func TestStreamLost(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	h.send(streamEndMsg{errors.Join(api.ErrClosed, errors.New("the node ended the event stream"))})
	if s := h.plain(); !strings.Contains(s, "disconnected") {
		t.Errorf("a lost stream is not shown:\n%s", s)
	}
}

// The bell's messages also go to the desktop, where there is one, made
// safe: escapes visible, the body's markup escaped, its length bounded.
func TestDesktopNotification(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	var got [][2]string
	var mu sync.Mutex
	h.m.opts.Notify = func(title, body string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, [2]string{title, body})
	}
	alice, dave, bob := ref(aliceID, "alice"), ref(daveID, "da\x1bve"), ref(bobID, "bob")
	h.deliver(msgEvent(2, "d1", dave, alice, "<b>hi</b>\x07 "+strings.Repeat("x", 300), 0, ""))
	h.deliver(msgEvent(3, "o1", bob, ref("#ops", "#ops"), "no mention", time.Minute, "#ops"))
	h.deliver(msgEvent(4, "o2", bob, ref("#ops", "#ops"), "@alice look", 2*time.Minute, "#ops", aliceID))
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("notifications %q, want the direct message and the mention", got)
	}
	if got[0][0] != `da\x1bve` || !strings.HasPrefix(got[0][1], "&lt;b&gt;hi&lt;/b&gt;\\x07 x") || len([]rune(got[0][1])) > 230 {
		t.Errorf("direct message notification %q", got[0])
	}
	if got[1] != [2]string{"bob in #ops", "@alice look"} {
		t.Errorf("mention notification %q", got[1])
	}
}

// A message that comes while the help covers the open conversation is
// not seen yet: it is marked read when the help closes.
func TestCoveredMessageIsNotRead(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.keys("f1")
	h.deliver(msgEvent(2, "g9", ref(bobID, "bob"), ref("#general", "#general"), "behind the help", time.Minute, "#general"))
	if slices.Contains(f.read, "g9") {
		t.Fatal("marked read while the help covered it")
	}
	h.keys("esc")
	if !slices.Contains(f.read, "g9") {
		t.Errorf("not marked read once shown: %v", f.read)
	}
}

// The reply to a send may come before the message's event: its state is
// kept for the event.
func TestSendReplyBeforeEvent(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.keys("alt+3")
	h.typeText("early bird")
	h.keys("enter") // the fake replies "delivered" with id sent-early bird; no event yet
	h.send(eventMsg{api.Message{ID: "sent-early bird", From: ref(aliceID, "alice"), To: ref(bobID, "bob"),
		Text: "early bird", Time: base.Add(27 * time.Hour), Outgoing: true}})
	if s := h.plain(); !strings.Contains(s, "alice: early bird ✓✓") {
		t.Errorf("the reply's state was lost:\n%s", s)
	}
}

func TestWho(t *testing.T) {
	h := newHarness(t, newFake(), 120, 24)
	h.typeText("/who")
	h.keys("enter")
	want := `#general, 4: ● alice (you), ◐ bob, ⊘ dave, ○ carol\x1b`
	if h.m.notice != want {
		t.Errorf("/who: %q, want %q", h.m.notice, want)
	}
	h.typeText("/who ops")
	h.keys("enter")
	if !strings.Contains(h.m.notice, "not a member") {
		t.Errorf("/who ops: %q", h.m.notice)
	}
}

// A status set by another client (lanchat away in another terminal)
// comes as a self event, and the status bar shows it as this person's.
func TestStatusSetElsewhereIsShown(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	status := func() string {
		lines := strings.Split(h.plain(), "\n")
		return lines[len(lines)-2]
	}
	if s := status(); !strings.HasPrefix(s, " alice (available) ·") {
		t.Fatalf("status line at start %q", s)
	}
	me := f.self
	me.State, me.StatusText = "away", "lunch"
	h.send(eventMsg{api.SelfChange{Type: api.TypeSelf, Seq: 2, Self: me}})
	if s := status(); !strings.HasPrefix(s, " alice (away: lunch) ·") {
		t.Errorf("after lanchat away elsewhere: status line %q", s)
	}
	// /away again now means back, as it does after the UI's own /away.
	h.typeText("/away")
	h.keys("enter")
	if len(f.status) != 1 || f.status[0].State != "available" {
		t.Errorf("/away while away (set elsewhere) asked for %+v, want available", f.status)
	}
}

// People's unread counts at start are the node's, from its history: a
// person not seen since the node started is listed with theirs, and
// messages older than the newest thousand count too. A second snapshot
// counts afresh, adding nothing.
func TestPeopleUnreadAtStartComeFromTheNode(t *testing.T) {
	f := newFake()
	erin := ref("ERINN"+strings.Repeat("E", 47), "erin")
	alice := ref(aliceID, "alice")
	for i := range 3 {
		f.hist[erin.ID] = append(f.hist[erin.ID], api.HistoryEntry{ID: fmt.Sprint("e", i), From: erin, To: alice,
			Text: "are you there?", Time: base.Add(time.Duration(i) * time.Minute), State: "delivered"})
	}
	gen := ref("#general", "#general")
	for i := range 1500 { // newer than erin's: the UI's index of 1,000 does not reach hers
		f.hist["#general"] = append(f.hist["#general"], api.HistoryEntry{ID: fmt.Sprint("n", i), From: ref(bobID, "bob"), To: gen,
			Text: "noise", Time: base.Add(time.Hour + time.Duration(i)*time.Second), State: "read", Room: "#general", Kind: "text"})
	}
	h := newHarness(t, f, 80, 24)
	if row := sidebarRow(t, h, "erin"); !strings.HasPrefix(row, "6 ○ erin") || !strings.HasSuffix(row, " 3") {
		t.Errorf("erin's row %q: want her, offline, with 3 unread", row)
	}
	if row := sidebarRow(t, h, "bob"); !strings.HasSuffix(row, " 1") {
		t.Errorf("bob's row %q: want 1 unread", row)
	}
	if row := sidebarRow(t, h, "dave"); strings.HasSuffix(row, "1") {
		t.Errorf("dave's row %q: nothing unread", row)
	}
	h.send(eventMsg{f.snapshot()})
	if row := sidebarRow(t, h, "erin"); !strings.HasSuffix(row, " 3") {
		t.Errorf("after a second snapshot erin's row %q: want still 3", row)
	}
	h.keys("alt+6")
	if row := sidebarRow(t, h, "erin"); strings.HasSuffix(row, "3") {
		t.Errorf("erin's conversation open, her row still counts: %q", row)
	}
	if !slices.Contains(f.read, "e2") {
		t.Errorf("erin's messages shown, not marked read: %v", f.read)
	}
}

// A peer online for the others and unreachable from here (a partition)
// has a mark of its own in the sidebar, and its conversation's header
// says so with how many vouch for it; typing to it tells nobody; reached
// again, it is shown as before.
func TestUnreachablePeerIsShownApart(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	bob := ref(bobID, "bob")
	h.keys("alt+3")
	h.send(eventMsg{api.Presence{Peer: bob, State: "away", StatusText: "at lunch", Change: api.ChangeUnreachable, Verified: true, SeenBy: 2}})
	// Rows below the header: its first line names bob too.
	rows := func() string { _, s, _ := strings.Cut(h.plain(), "\n"); return s }
	if !strings.Contains(rows(), "\n 3 ◌ bob ") {
		t.Errorf("bob unreachable: no row with the ◌ mark:\n%s", h.plain())
	}
	header := strings.Split(h.plain(), "\n")[0]
	if !strings.Contains(header, "◌ away — unreachable from here, seen by 2 others — at lunch") {
		t.Errorf("header %q", header)
	}
	golden(t, "unreachable-80x24", h.screen())
	h.typeText("still there?")
	if len(f.typing) != 0 {
		t.Errorf("typing to an unreachable peer told %v", f.typing)
	}
	h.keys("ctrl+c")
	h.send(eventMsg{api.Presence{Peer: bob, State: "away", StatusText: "at lunch", Change: api.ChangeReachable, Verified: true, Reachable: true}})
	if !strings.Contains(rows(), "\n 3 ◐ bob ") {
		t.Errorf("bob reached again: no row with his away mark:\n%s", h.plain())
	}
	if header := strings.Split(h.plain(), "\n")[0]; strings.Contains(header, "unreachable") {
		t.Errorf("reached again, the header says %q", header)
	}
	if !strings.Contains(h.plain(), "2 of 3 peers online") {
		t.Errorf("the status bar's count changed with reachability:\n%s", h.plain())
	}
}

// A room's header counts its members online: someone going offline is
// no room event, so a presence change has the UI read the rooms again.
func TestRoomCountsFollowPresence(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	h.m.roomsDelay = 0
	if header := strings.Split(h.plain(), "\n")[0]; !strings.Contains(header, "3 of 4 members online") {
		t.Fatalf("header %q", header)
	}
	f.mu.Lock()
	f.rooms[0].MembersOnline = 2 // what the node counts once bob is gone
	f.mu.Unlock()
	h.send(eventMsg{api.Presence{Peer: ref(bobID, "bob"), State: "offline", Change: api.ChangeLost}})
	if header := strings.Split(h.plain(), "\n")[0]; !strings.Contains(header, "2 of 4 members online") {
		t.Errorf("after bob was lost: header %q", header)
	}
	if h.m.convs["#general"].unread != 0 {
		t.Errorf("reading the counts changed #general's unread to %d", h.m.convs["#general"].unread)
	}
}

// A room with an unread message that names this node, from before the
// UI opened, has its @ mark at start, as it would have had the UI been
// open; read ones mark nothing.
func TestUnreadMentionFromBeforeIsMarked(t *testing.T) {
	f := newFake()
	ops := ref("#ops", "#ops")
	f.rooms[1].Unread = 2
	f.hist["#ops"] = []api.HistoryEntry{
		{ID: "o1", From: ref(bobID, "bob"), To: ops, Text: "@alice seen this?", Time: base, State: "read", Room: "#ops", Kind: "text", Mentions: []string{aliceID}},
		{ID: "o2", From: ref(bobID, "bob"), To: ops, Text: "deploying", Time: base.Add(time.Minute), State: "delivered", Room: "#ops", Kind: "text"},
	}
	h := newHarness(t, f, 80, 24)
	if row := sidebarRow(t, h, "#ops"); !strings.HasSuffix(row, " 2") {
		t.Errorf("#ops row %q: want 2 unread, no mention (the one naming alice is read)", row)
	}
	f.hist["#ops"] = append(f.hist["#ops"], api.HistoryEntry{ID: "o3", From: ref(daveID, "dave"), To: ops, Text: "@alice please look",
		Time: base.Add(2 * time.Minute), State: "delivered", Room: "#ops", Kind: "text", Mentions: []string{aliceID}})
	f.rooms[1].Unread = 3
	h.send(eventMsg{f.snapshot()})
	if row := sidebarRow(t, h, "#ops"); !strings.HasSuffix(row, " 3@") {
		t.Errorf("#ops row %q: want 3 unread and the mention mark", row)
	}
}
