package tui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"charm.land/bubbles/v2/textarea"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

const offerID = "0a1b2c3d4e5f6a7b"

func offerEvent(id string, from api.PeerRef, names []string, files int, total int64) eventMsg {
	return eventMsg{api.FileOffer{Type: api.TypeFileOffer, ID: id, From: from, Names: names, Files: files, Total: total}}
}

func transferEvent(t api.Transfer) eventMsg {
	return eventMsg{api.TransferChange{Type: api.TypeTransfer, Transfer: t}}
}

// offered puts an incoming offer in the fake, as the node holds it before
// it sends the event.
func (h *harness) offered(id string, from api.PeerRef, names []string, files int, total int64, at time.Time) api.Transfer {
	t := api.Transfer{ID: id, Direction: "in", Peer: from, Names: names, Files: files, Total: total, State: api.TransferOffered, Updated: at}
	h.f.mu.Lock()
	h.f.transfers = append(h.f.transfers, t)
	h.f.mu.Unlock()
	return t
}

// An offer from bob while #general is open: bob's unread count and the
// bell, as for a direct message; in bob's conversation the offer with
// its names, count, size and how to answer; /accept answers the newest
// one there; progress then shows bytes, percent and rate, and the end
// says the files were verified.
func TestIncomingFileOffer(t *testing.T) {
	f := newFake()
	var notified []string
	var mu sync.Mutex
	h := newHarness(t, f, 80, 24)
	h.m.opts.Notify = func(title, body string) {
		mu.Lock()
		defer mu.Unlock()
		notified = append(notified, title+": "+body)
	}
	bob := ref(bobID, "bob")
	at := base.Add(48 * time.Hour)
	tr := h.offered(offerID, bob, []string{"report.pdf", "photos"}, 12, 30<<20, at)
	h.send(offerEvent(offerID, bob, tr.Names, tr.Files, tr.Total), transferEvent(tr))
	if h.bells != 1 {
		t.Errorf("an offer elsewhere: %d bells, want 1", h.bells)
	}
	if row := sidebarRow(t, h, "bob"); !strings.HasSuffix(row, "2") {
		t.Errorf("bob's row %q: want 2 unread (one message from before, the offer)", row)
	}
	mu.Lock()
	if len(notified) != 1 || notified[0] != "bob: offers report.pdf, photos (12 files, 30.0 MiB)" {
		t.Errorf("notifications %q", notified)
	}
	mu.Unlock()

	// The /accept here is for no offer: it says where one waits.
	h.typeText("/accept")
	h.keys("enter")
	if len(f.accepted) != 0 || !strings.Contains(h.m.notice, "no offer waiting here; bob offers report.pdf, photos: /accept 0a1b2c3d") {
		t.Errorf("/accept in #general: accepted %v, notice %q", f.accepted, h.m.notice)
	}
	h.keys("ctrl+c")

	h.keys("esc")
	if s := h.plain(); !strings.Contains(s, "2 of 3 peers online · 1 offer to answer ·") {
		t.Errorf("the status bar does not count the offer:\n%s", s)
	}
	h.keys("alt+3")
	if h.m.cur != bobID {
		t.Fatalf("Alt-3 opened %q", h.m.cur)
	}
	s := h.plain()
	for _, want := range []string{"⇩ bob offers report.pdf, photos (12 files, 30.0 MiB)", "Alt-Y accept · Alt-N decline (0a1b2c3d)"} {
		if !strings.Contains(s, want) {
			t.Errorf("bob's conversation does not show %q:\n%s", want, s)
		}
	}
	golden(t, "file-offer-80x24", h.screen())

	h.typeText("/accept")
	h.keys("enter")
	if !slices.Equal(f.accepted, []string{offerID}) {
		t.Fatalf("/accept accepted %v", f.accepted)
	}
	// Progress, a change every second, 6 MiB each.
	tr.State = api.TransferActive
	for i, done := range []int64{6 << 20, 12 << 20, 18 << 20} {
		tr.Done, tr.FilesDone, tr.Current = done, i*3, "photos/IMG_000"+string(rune('1'+i))+".jpg"
		tr.Updated = at.Add(time.Duration(i+1) * time.Second)
		h.send(transferEvent(tr))
	}
	s = h.plain()
	for _, want := range []string{"[██████░░░░]  60% · 18.0 MiB of 30.0 MiB · 6.0 MiB/s", "6/12 files · photos/IMG_0003.jpg"} {
		if !strings.Contains(s, want) {
			t.Errorf("the progress line does not show %q:\n%s", want, s)
		}
	}
	h.keys("esc")
	if s := h.plain(); !strings.Contains(s, "peers online · ⇅ 1 moving ·") {
		t.Errorf("the status bar does not count the transfer:\n%s", s)
	}
	golden(t, "file-progress-80x24", h.screen())
	tr.State, tr.Done, tr.FilesDone, tr.Current = api.TransferDone, tr.Total, 12, ""
	h.send(transferEvent(tr))
	if s := h.plain(); !strings.Contains(s, "✓ received and verified: 12 files, 30.0 MiB") || strings.Contains(s, "MiB/s") {
		t.Errorf("a finished transfer:\n%s", s)
	}
	if n := strings.Count(h.plain(), "bob offers"); n != 1 {
		t.Errorf("the offer is shown %d times, want once", n)
	}
}

// Alt-Y and Alt-N answer the newest offer waiting in the open
// conversation with one key, and its line says so; an older one there
// says to answer it by id. With no offer here the keys answer nothing
// and say where one waits; in the input line they type nothing.
func TestOfferAnsweredWithOneKey(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	bob, dave := ref(bobID, "bob"), ref(daveID, "dave")
	at := base.Add(48 * time.Hour)
	h.keys("alt+3") // bob
	old := h.offered("aaaa1111aaaa1111", bob, []string{"old.txt"}, 1, 10, at)
	h.send(offerEvent(old.ID, bob, old.Names, 1, 10))
	if s := h.plain(); !strings.Contains(s, "Alt-Y accept · Alt-N decline (aaaa1111)") {
		t.Errorf("one offer waiting: its line does not name the keys:\n%s", s)
	}
	fresh := h.offered("bbbb2222bbbb2222", bob, []string{"new.txt"}, 1, 20, at.Add(time.Minute))
	h.send(offerEvent(fresh.ID, bob, fresh.Names, 1, 20))
	s := h.plain()
	if !strings.Contains(s, "/accept or /decline (aaaa1111)") || !strings.Contains(s, "Alt-Y accept · Alt-N decline (bbbb2222)") {
		t.Errorf("two offers: the keys should be the newer's, the older answered by id:\n%s", s)
	}
	h.typeText("ok")
	h.keys("alt+y")
	if !slices.Equal(f.accepted, []string{fresh.ID}) {
		t.Fatalf("Alt-Y accepted %v, want the newest offer", f.accepted)
	}
	if v := h.m.input.Value(); v != "ok" {
		t.Errorf("Alt-Y changed the line being written to %q", v)
	}
	h.keys("ctrl+c")
	if s := h.plain(); !strings.Contains(s, "Alt-Y accept · Alt-N decline (aaaa1111)") {
		t.Errorf("the newer answered, the older's line should name the keys now:\n%s", s)
	}
	h.keys("alt+n")
	if !slices.Equal(f.declined, []string{old.ID}) {
		t.Fatalf("Alt-N declined %v, want the older offer, now the only one", f.declined)
	}
	if s := h.plain(); !strings.Contains(s, "✗ declined") {
		t.Errorf("declined offer:\n%s", s)
	}
	h.keys("alt+y")
	if len(f.accepted) != 1 || !strings.Contains(h.m.notice, "no offer is waiting") {
		t.Errorf("Alt-Y with nothing waiting: accepted %v, notice %q", f.accepted, h.m.notice)
	}
	waiting := h.offered("cccc3333cccc3333", dave, []string{"d.txt"}, 1, 30, at.Add(2*time.Minute))
	h.send(offerEvent(waiting.ID, dave, waiting.Names, 1, 30))
	h.keys("alt+n")
	if len(f.declined) != 1 || !strings.Contains(h.m.notice, "no offer waiting here; dave offers d.txt: /decline cccc3333") {
		t.Errorf("Alt-N in bob's conversation, dave's offer waiting: declined %v, notice %q", f.declined, h.m.notice)
	}
}

// /decline answers the offer named by an id prefix, and an offer already
// answered is not answered again.
func TestDeclineByID(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, 80, 24)
	bob, dave := ref(bobID, "bob"), ref(daveID, "dave")
	at := base.Add(48 * time.Hour)
	t1 := h.offered("aaaa1111aaaa1111", bob, []string{"a.txt"}, 1, 10, at)
	t2 := h.offered("bbbb2222bbbb2222", dave, []string{"b.txt"}, 1, 20, at.Add(time.Second))
	h.send(offerEvent(t1.ID, bob, t1.Names, 1, 10), offerEvent(t2.ID, dave, t2.Names, 1, 20))
	h.typeText("/decline bbbb")
	h.keys("enter")
	if !slices.Equal(f.declined, []string{t2.ID}) {
		t.Fatalf("/decline bbbb declined %v", f.declined)
	}
	h.keys("alt+5") // dave
	if s := h.plain(); !strings.Contains(s, "✗ declined") {
		t.Errorf("dave's declined offer:\n%s", s)
	}
	h.typeText("/decline")
	h.keys("enter")
	if len(f.declined) != 1 || h.m.notice == "" || !strings.Contains(h.m.notice, "no offer waiting here; bob offers a.txt") {
		t.Errorf("/decline with nothing waiting here: declined %v, notice %q", f.declined, h.m.notice)
	}
	h.keys("ctrl+c")
	h.typeText("/accept zzzz")
	h.keys("enter")
	if len(f.accepted) != 0 || !strings.Contains(h.m.notice, "no offer zzzz") {
		t.Errorf("/accept of an unknown id: accepted %v, notice %q", f.accepted, h.m.notice)
	}
}

// An offer made while the UI was closed is in the node's transfer list:
// the snapshot's reload shows it.
func TestOfferFromBeforeTheUI(t *testing.T) {
	f := newFake()
	f.transfers = []api.Transfer{{ID: offerID, Direction: "in", Peer: ref(daveID, "dave"), Names: []string{"slides.odp"},
		Files: 1, Total: 2048, State: api.TransferOffered, Updated: base.Add(47 * time.Hour)}}
	h := newHarness(t, f, 80, 24)
	h.keys("alt+5")
	if h.m.cur != daveID {
		t.Fatalf("Alt-5 opened %q", h.m.cur)
	}
	if s := h.plain(); !strings.Contains(s, "⇩ dave offers slides.odp (1 file, 2.0 KiB)") {
		t.Errorf("the waiting offer is not shown:\n%s", s)
	}
	// A resync keeps it, once.
	h.send(eventMsg{f.snapshot()})
	if n := strings.Count(h.plain(), "dave offers"); n != 1 {
		t.Errorf("after a resync the offer is shown %d times:\n%s", n, h.plain())
	}
	h.typeText("/accept")
	h.keys("enter")
	if !slices.Equal(f.accepted, []string{offerID}) {
		t.Errorf("/accept accepted %v", f.accepted)
	}
}

// /file offers absolute paths to the open conversation's person, with
// Tab completing them from the disk; a room or a missing path is refused
// with the line kept; the transfer's end says how it went.
func TestSendFiles(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"report one.pdf", "reports/q1.txt", "readme"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFake()
	h := newHarness(t, f, 100, 30)
	h.typeText("/file " + filepath.Join(dir, "readme"))
	h.keys("enter")
	if len(f.offers) != 0 || !strings.Contains(h.m.notice, "files go to one person") || h.m.input.Value() == "" {
		t.Errorf("/file in a room: offers %v, notice %q, input %q", f.offers, h.m.notice, h.m.input.Value())
	}
	h.keys("ctrl+c", "alt+3") // bob
	h.typeText("/file " + filepath.Join(dir, "missing"))
	h.keys("enter")
	if len(f.offers) != 0 || !strings.Contains(h.m.notice, "not offered") {
		t.Errorf("/file of a missing path: offers %v, notice %q", f.offers, h.m.notice)
	}
	h.keys("ctrl+c")

	h.typeText("/file " + dir + "/rep")
	h.keys("tab")
	first := h.m.input.Value()
	h.keys("tab")
	second := h.m.input.Value()
	want1, want2 := "/file "+dir+"/report\\ one.pdf ", "/file "+dir+"/reports/"
	if first != want1 || second != want2 {
		t.Errorf("Tab, Tab: %q then %q, want %q then %q", first, second, want1, want2)
	}
	h.keys("tab") // back to the first
	h.typeText(dir + "/reports/")
	h.keys("tab")
	if v := h.m.input.Value(); v != want1+dir+"/reports/q1.txt " {
		t.Errorf("Tab into a folder: %q", v)
	}
	h.keys("enter")
	if len(f.offers) != 1 {
		t.Fatalf("offers %v", f.offers)
	}
	want := []string{filepath.Join(dir, "report one.pdf"), filepath.Join(dir, "reports", "q1.txt")}
	if got := f.offers[0]; got.To != bobID || !slices.Equal(got.Paths, want) {
		t.Errorf("offered %+v, want %v to bob", got, want)
	}
	if s := h.plain(); !strings.Contains(s, "⇧ you offer report one.pdf, q1.txt (2 files, 1.0 MiB) to bob") ||
		!strings.Contains(s, "… waiting for bob") {
		t.Errorf("the outgoing offer:\n%s", s)
	}
	tr := f.transfers[0]
	tr.State, tr.Error = api.TransferFailed, "bob's disk is full"
	h.send(transferEvent(tr))
	if s := h.plain(); !strings.Contains(s, "✗ failed: bob's disk is full") {
		t.Errorf("a failed transfer:\n%s", s)
	}

	// A relative path is the UI's working directory's.
	t.Chdir(dir)
	h.typeText("/file readme")
	h.keys("enter")
	if len(f.offers) != 2 || !slices.Equal(f.offers[1].Paths, []string{filepath.Join(dir, "readme")}) {
		t.Errorf("a relative path: offers %+v", f.offers)
	}
	tr = f.transfers[1]
	tr.State = api.TransferDeclined
	h.send(transferEvent(tr))
	if s := h.plain(); !strings.Contains(s, "✗ declined by bob") {
		t.Errorf("a declined offer:\n%s", s)
	}
}

// A front end whose API moves no files says so.
func TestNoFilesAPI(t *testing.T) {
	f := newFake()
	m := New(struct{ api.API }{f}, Options{Location: time.UTC})
	h := &harness{t: t, m: m, f: f}
	h.send(eventMsg{f.snapshot()})
	h.keys("alt+3")
	h.typeText("/file /etc/hostname")
	h.keys("enter")
	if h.m.notice != "this node does not move files" || len(f.offers) != 0 {
		t.Errorf("notice %q, offers %v", h.m.notice, f.offers)
	}
}

// splitArgs reads quotes and escapes as a shell does.
func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		bad      bool
	}{
		{"plain", "a b  c", []string{"a", "b", "c"}, false},
		{"escaped space", `my\ file.txt x`, []string{"my file.txt", "x"}, false},
		{"quotes", `"a b" 'c d' e"f g"`, []string{"a b", "c d", "ef g"}, false},
		{"empty quotes", `''`, []string{""}, false},
		{"unfinished quote", `"a b`, nil, true},
		{"trailing backslash", `a\`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitArgs(tc.in)
			if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
				t.Errorf("splitArgs(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

// File names a peer offers are shown as every other thing a peer wrote:
// escaped, never raw; a thousand of them list three and a count; a long
// one is cut.
func TestHostileFileNames(t *testing.T) {
	f := newFake()
	var notified []string
	var mu sync.Mutex
	h := newHarness(t, f, 100, 30)
	h.m.opts.Notify = func(title, body string) {
		mu.Lock()
		defer mu.Unlock()
		notified = append(notified, title+"\n"+body)
	}
	h.m.st = styles{}
	h.m.input.SetStyles(textarea.Styles{})
	evilID := "EVILL" + strings.Repeat("E", 47)
	evil := ref(evilID, "mal\x1b]0;pwned\x07")
	names := []string{"\x1b[2Jclear.txt", "doc\u202egpj.exe", "two\nlines\r.txt"}
	for i := range 997 {
		names = append(names, strings.Repeat("x", i))
	}
	names[3] = strings.Repeat("long", 100)
	tr := h.offered("evil0000evil0000", evil, names, len(names), 1<<40, base.Add(48*time.Hour))
	tr.Current = "\x1b[31mred\u2066"
	h.send(offerEvent(tr.ID, evil, names, len(names), 1<<40))
	h.keys("ctrl+k")
	h.typeText("mal")
	h.keys("enter")
	if h.m.cur != evilID {
		t.Fatalf("open %q, want the evil peer", h.m.cur)
	}
	tr.State, tr.Done, tr.Updated = api.TransferActive, 1<<30, tr.Updated.Add(time.Second)
	h.send(transferEvent(tr))
	screen := h.m.View().Content
	for _, r := range screen {
		if r != '\n' && termtext.Invisible(r) {
			i := strings.IndexRune(screen, r)
			t.Fatalf("%U reached the screen, after %q", r, screen[max(0, i-80):min(len(screen), i+60)])
		}
	}
	for _, want := range []string{`\x1b[2Jclear.txt`, `doc\u202egpj.exe`, `two\x0alines\x0d.txt`, "and 997 more (1000 files, 1.0 TiB)", `mal\x1b]0;pwned\x07 offers`} {
		if !strings.Contains(screen, want) {
			t.Errorf("the offer does not show %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, strings.Repeat("long", 20)) {
		t.Errorf("a 400-character name is shown whole:\n%s", screen)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notified) != 1 {
		t.Fatalf("notifications: %q", notified)
	}
	for _, r := range notified[0] {
		if r != '\n' && termtext.Invisible(r) {
			t.Errorf("the notification holds %U: %q", r, notified[0])
		}
	}
}
