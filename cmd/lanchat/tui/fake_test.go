package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"lanchat/node/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeAPI is a node in memory: what it is told is recorded for the tests
// to check.
type fakeAPI struct {
	mu      sync.Mutex
	self    api.Self
	peers   []api.Peer
	rooms   []api.Room
	hist    map[string][]api.HistoryEntry // by conversation: "#room" or peer id
	queries []api.HistoryQuery
	sent    []api.SendRequest
	read    []string
	status  []api.StatusRequest
	joined  []string
	sendErr error

	transfers []api.Transfer
	offers    []api.FileOfferRequest
	accepted  []string
	declined  []string
	typing    []string // whom the UI said it types to
}

var _ api.API = (*fakeAPI)(nil)

func (f *fakeAPI) Self(context.Context) (api.Self, error)    { return f.self, nil }
func (f *fakeAPI) Peers(context.Context) ([]api.Peer, error) { return f.peers, nil }
func (f *fakeAPI) SetStatus(_ context.Context, r api.StatusRequest) (api.StatusReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = append(f.status, r)
	return api.StatusReply{State: r.State, Text: r.Text, Live: true}, nil
}
func (f *fakeAPI) Send(_ context.Context, r api.SendRequest) (api.SendReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return api.SendReply{}, f.sendErr
	}
	f.sent = append(f.sent, r)
	return api.SendReply{ID: "sent-" + r.Text, To: api.PeerRef{ID: r.To}, State: "delivered"}, nil
}

// History pages as the node does: the newest Limit of a conversation,
// before an id, or a search over all.
func (f *fakeAPI) History(_ context.Context, q api.HistoryQuery) ([]api.HistoryEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	var es []api.HistoryEntry
	switch {
	case q.Search != "":
		for _, k := range sortedKeys(f.hist) {
			for _, e := range f.hist[k] {
				if strings.Contains(strings.ToLower(e.Text), strings.ToLower(q.Search)) {
					es = append(es, e)
				}
			}
		}
	case q.Peer == "":
		for _, k := range sortedKeys(f.hist) {
			es = append(es, f.hist[k]...)
		}
		slices.SortStableFunc(es, func(a, b api.HistoryEntry) int { return a.Time.Compare(b.Time) })
	default:
		es = f.hist[q.Peer]
		if q.Before != "" {
			i := slices.IndexFunc(es, func(e api.HistoryEntry) bool { return e.ID == q.Before })
			if i < 0 {
				return nil, api.Errorf(api.CodeNotFound, "no such message")
			}
			es = es[:i]
		}
	}
	limit := q.Limit
	if limit == 0 {
		limit = api.DefaultHistoryLimit
	}
	if len(es) > limit {
		es = es[len(es)-limit:]
	}
	return slices.Clone(es), nil
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (f *fakeAPI) Outbox(context.Context) ([]api.OutboxEntry, error) { return nil, nil }
func (f *fakeAPI) MarkRead(_ context.Context, r api.ReadRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read = append(f.read, r.IDs...)
	return nil
}
func (f *fakeAPI) Rooms(context.Context) ([]api.Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rooms), nil
}
func (f *fakeAPI) JoinRoom(_ context.Context, r api.RoomRequest) (api.Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joined = append(f.joined, r.Room)
	return api.Room{Name: r.Room, Joined: true, MembersOnline: 1, MembersTotal: 1}, nil
}
func (f *fakeAPI) LeaveRoom(_ context.Context, r api.RoomRequest) (api.Room, error) {
	return api.Room{Name: r.Room}, nil
}
func (f *fakeAPI) RoomMembers(_ context.Context, room string) ([]api.RoomMember, error) {
	if room != "#general" {
		return nil, api.Errorf(api.CodeNotMember, "not a member of "+room)
	}
	return []api.RoomMember{
		{PeerRef: ref(aliceID, "alice"), State: "available", Online: true},
		{PeerRef: ref(bobID, "bob"), State: "away", Online: true},
		{PeerRef: ref(carolID, "carol\x1b"), State: "offline"},
		{PeerRef: ref(daveID, "dave"), State: "busy", Online: true},
	}, nil
}

// Contacts, trust, doctor and retention are not the UI's (yet): the fake
// answers them as a node with nothing to say would.
func (f *fakeAPI) Contacts(context.Context) ([]api.Contact, error) { return nil, nil }
func (f *fakeAPI) Trust(_ context.Context, r api.TrustRequest) (api.Contact, error) {
	return api.Contact{ID: r.ID, Trusted: true}, nil
}
func (f *fakeAPI) Untrust(_ context.Context, r api.TrustRequest) (api.Contact, error) {
	return api.Contact{ID: r.ID}, nil
}
func (f *fakeAPI) Doctor(context.Context, api.DoctorQuery) (api.DoctorReport, error) {
	return api.DoctorReport{Running: true}, nil
}
func (f *fakeAPI) SetRetention(_ context.Context, r api.RetentionRequest) (api.Room, error) {
	return api.Room{Name: r.Room}, nil
}

func (f *fakeAPI) Events(ctx context.Context, fn func(api.Event) error) error {
	<-ctx.Done()
	return nil
}

// snapshot counts people's unread messages from the history, as the
// node does from its store.
func (f *fakeAPI) snapshot() api.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	unread := []api.DirectUnread{}
	for _, k := range sortedKeys(f.hist) {
		if strings.HasPrefix(k, "#") {
			continue
		}
		n, from := 0, api.PeerRef{}
		for _, e := range f.hist[k] {
			if !e.Outgoing && e.State != "read" {
				n, from = n+1, e.From
			}
		}
		if n > 0 {
			unread = append(unread, api.DirectUnread{Peer: from, Unread: n})
		}
	}
	return api.Snapshot{Type: api.TypeSnapshot, Seq: 1, Self: f.self, Peers: f.peers, Rooms: f.rooms, Unread: unread}
}

// Ids of the fixture's people: 52 characters, as real ones are.
var (
	aliceID = "ALICE" + strings.Repeat("A", 47)
	bobID   = "BOBBB" + strings.Repeat("B", 47)
	carolID = "CAROL" + strings.Repeat("C", 47)
	daveID  = "DAVED" + strings.Repeat("D", 47)
)

// base is the fixture's first day, in UTC (the tests show times in UTC).
var base = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func ref(id, name string) api.PeerRef { return api.PeerRef{ID: id, Name: name} }

// newFake is an office: alice (this node), bob away at lunch, carol gone,
// dave busy; #general with two days of talk, #ops, and a direct
// conversation with bob.
func newFake() *fakeAPI {
	f := &fakeAPI{
		self: api.Self{ID: aliceID, Name: "alice", State: "available", Running: true, Addr: "10.0.0.2", MDNS: true},
		peers: []api.Peer{
			{ID: bobID, Name: "bob", State: "away", StatusText: "at lunch", Verified: true, Reachable: true},
			{ID: carolID, Name: "carol", State: "offline"},
			{ID: daveID, Name: "dave", State: "busy", Reachable: true},
		},
		rooms: []api.Room{
			{Name: "#general", Joined: true, MembersOnline: 3, MembersTotal: 4, Unread: 1},
			{Name: "#ops", Joined: true, MembersOnline: 2, MembersTotal: 2},
			{Name: "#random", MembersOnline: 1, MembersTotal: 3},
		},
		hist: map[string][]api.HistoryEntry{},
	}
	alice, bob, carol := ref(aliceID, "alice"), ref(bobID, "bob"), ref(carolID, "carol")
	gen := ref("#general", "#general")
	room := func(id string, from api.PeerRef, at time.Duration, kind, text, state string, mentions ...string) api.HistoryEntry {
		return api.HistoryEntry{ID: id, From: from, To: gen, Text: text, Time: base.Add(at), Outgoing: from.ID == aliceID,
			State: state, Room: "#general", Kind: kind, Mentions: mentions}
	}
	f.hist["#general"] = []api.HistoryEntry{
		room("g1", carol, 0, "join", "", "read"),
		room("g2", carol, time.Minute, "text", "morning all", "read"),
		room("g3", alice, 2*time.Minute, "text", "morning! the build is green again, and the flaky test in the mesh package is fixed", "sent"),
		room("g4", bob, 24*time.Hour+3*time.Hour, "text", "standup in 5", "read"),
		room("g5", bob, 24*time.Hour+3*time.Hour+time.Minute, "text", "@alice can you share the notes?\nthe ones from friday", "delivered", aliceID),
	}
	f.hist[bobID] = []api.HistoryEntry{
		{ID: "b1", From: alice, To: bob, Text: "lunch?", Time: base.Add(26 * time.Hour), Outgoing: true, State: "read"},
		{ID: "b2", From: bob, To: alice, Text: "yes, at noon", Time: base.Add(26*time.Hour + time.Minute), State: "read"},
		{ID: "b3", From: alice, To: bob, Text: "see you there", Time: base.Add(26*time.Hour + 2*time.Minute), Outgoing: true, State: "delivered"},
		{ID: "b4", From: alice, To: bob, Text: "bring the notes", Time: base.Add(26*time.Hour + 3*time.Minute), Outgoing: true, State: "queued"},
		{ID: "b5", From: bob, To: alice, Text: "will do", Time: base.Add(26*time.Hour + 4*time.Minute), State: "delivered"},
	}
	return f
}

// harness drives a Model as Bubble Tea would: each message through
// Update, and each command's message back in, until none is left.
type harness struct {
	t     testing.TB
	m     *Model
	f     *fakeAPI
	bells int
	quit  bool
}

func newHarness(t testing.TB, f *fakeAPI, w, h int) *harness {
	t.Helper()
	m := New(f, Options{Mode: "in-process", Location: time.UTC})
	m.now = func() time.Time { return base.Add(48 * time.Hour) }
	// The model's timers: one due now fires, a later one never does (a
	// test moves m.now instead of waiting).
	m.after = func(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd {
		if d > 0 {
			return nil
		}
		return func() tea.Msg { return fn(time.Now()) }
	}
	hs := &harness{t: t, m: m, f: f}
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	hs.send(eventMsg{f.snapshot()})
	return hs
}

// send delivers msg and runs the commands it leads to. Every API call of
// the fake answers at once and the model's timers are the harness's, so
// a command that does not answer within seconds (one of the textarea's
// own timers, should it make one) is dropped.
func (h *harness) send(msgs ...tea.Msg) {
	h.t.Helper()
	queue := slices.Clone(msgs)
	for len(queue) > 0 {
		msg := queue[0]
		queue = queue[1:]
		switch v := msg.(type) {
		case nil:
			continue
		case tea.BatchMsg:
			for _, c := range v {
				queue = append(queue, run(c))
			}
			continue
		case tea.RawMsg:
			if v.Msg == "\a" {
				h.bells++
			}
			continue
		case tea.QuitMsg:
			h.quit = true
			continue
		}
		_, cmd := h.m.Update(msg)
		queue = append(queue, run(cmd))
	}
}

func run(c tea.Cmd) tea.Msg {
	if c == nil {
		return nil
	}
	ch := make(chan tea.Msg, 1)
	go func() { ch <- c() }()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		return nil // long enough for a loaded machine under -race
	}
}

// keys presses each key; a plain string is typed rune by rune.
func (h *harness) keys(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		h.send(keyMsg(k))
	}
}

func (h *harness) typeText(s string) {
	h.t.Helper()
	for _, r := range s {
		h.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

// keyMsg makes the key press that String() names k ("ctrl+k", "alt+1").
func keyMsg(k string) tea.KeyPressMsg {
	var mod tea.KeyMod
	for {
		switch {
		case strings.HasPrefix(k, "ctrl+"):
			mod |= tea.ModCtrl
			k = k[5:]
			continue
		case strings.HasPrefix(k, "alt+"):
			mod |= tea.ModAlt
			k = k[4:]
			continue
		}
		break
	}
	codes := map[string]rune{
		"enter": tea.KeyEnter, "tab": tea.KeyTab, "esc": tea.KeyEscape, "backspace": tea.KeyBackspace,
		"up": tea.KeyUp, "down": tea.KeyDown, "pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown,
		"f1": tea.KeyF1, "f2": tea.KeyF2, "home": tea.KeyHome, "end": tea.KeyEnd,
	}
	if c, ok := codes[k]; ok {
		return tea.KeyPressMsg{Code: c, Mod: mod}
	}
	r := []rune(k)[0]
	if mod == 0 {
		return tea.KeyPressMsg{Code: r, Text: k}
	}
	return tea.KeyPressMsg{Code: r, Mod: mod}
}

// screen is the view as an ASCII-profile terminal gets it: no colours,
// attributes (bold, reverse) kept, so a golden file is stable.
func (h *harness) screen() string {
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.ASCII}
	w.WriteString(h.m.View().Content)
	return b.String()
}

// plain is the view with every attribute stripped.
func (h *harness) plain() string {
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.NoTTY}
	w.WriteString(h.m.View().Content)
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the view (go test -update rewrites it); the view, attributes stripped:\n%s", path, stripped(got))
	}
}

func stripped(s string) string {
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.NoTTY}
	w.WriteString(s)
	return b.String()
}

// The fake moves files as the node's API does: offers are recorded and
// answered as waiting, and accept and decline as the node answers them.
var _ api.Files = (*fakeAPI)(nil)

func (f *fakeAPI) OfferFiles(_ context.Context, r api.FileOfferRequest) (api.Transfer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offers = append(f.offers, r)
	names := make([]string, len(r.Paths))
	for i, p := range r.Paths {
		names[i] = filepath.Base(p)
	}
	t := api.Transfer{ID: fmt.Sprintf("out%013d", len(f.offers)), Direction: "out", Peer: api.PeerRef{ID: r.To, Name: "bob"},
		Names: names, Files: len(names), Total: 1 << 20, State: api.TransferWaiting, Updated: base.Add(48 * time.Hour)}
	f.transfers = append(f.transfers, t)
	return t, nil
}

func (f *fakeAPI) Transfers(context.Context) ([]api.Transfer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.transfers), nil
}

func (f *fakeAPI) AcceptTransfer(_ context.Context, r api.TransferRequest) (api.Transfer, error) {
	return f.settleTransfer(r.ID, true)
}

func (f *fakeAPI) DeclineTransfer(_ context.Context, r api.TransferRequest) (api.Transfer, error) {
	return f.settleTransfer(r.ID, false)
}

func (f *fakeAPI) settleTransfer(id string, accept bool) (api.Transfer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range f.transfers {
		if t.ID != id {
			continue
		}
		if t.State != api.TransferOffered {
			return api.Transfer{}, api.Errorf(api.CodeInvalid, "transfer "+id+" is not waiting for a decision")
		}
		if accept {
			f.accepted = append(f.accepted, id)
			t.State = api.TransferActive
		} else {
			f.declined = append(f.declined, id)
			t.State = api.TransferDeclined
		}
		f.transfers[i] = t
		return t, nil
	}
	return api.Transfer{}, api.Errorf(api.CodeNotFound, "no transfer "+id)
}

var _ api.Typist = (*fakeAPI)(nil)

func (f *fakeAPI) Typing(_ context.Context, r api.TypingRequest) (api.TypingReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typing = append(f.typing, r.To)
	return api.TypingReply{To: api.PeerRef{ID: r.To}, Sent: true}, nil
}
