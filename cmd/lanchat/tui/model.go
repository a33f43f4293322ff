package tui

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textarea"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

// Options configure a Model.
type Options struct {
	// Mode says how the UI reaches its node, for the status bar:
	// "attached" (a node running beside it) or "in-process".
	Mode string
	// Location is where times are shown; nil means time.Local.
	Location *time.Location
	// CallTimeout bounds each API call; 0 means 15 s.
	CallTimeout time.Duration
	// Notify, if set, shows a desktop notification (a new direct message
	// or a mention elsewhere, when the bell rings). It is called from a
	// command's goroutine, with the title and body made safe already.
	Notify func(title, body string)
}

// Messages the model gets besides keys: the event stream's events, and
// the replies to its API calls.
type (
	eventMsg     struct{ ev api.Event }
	streamEndMsg struct{ err error }
	historyMsg   struct {
		key     string
		before  string
		entries []api.HistoryEntry
		err     error
	}
	indexMsg struct {
		entries []api.HistoryEntry
		err     error
	}
	sentMsg struct {
		key, text string
		reply     api.SendReply
		err       error
	}
	roomMsg struct {
		room  api.Room
		join  bool
		err   error
		quiet bool
	}
	statusMsg struct {
		reply api.StatusReply
		err   error
	}
	searchMsg struct {
		query   string
		entries []api.HistoryEntry
		err     error
	}
	readMsg   struct{ err error }
	noticeMsg struct{ text string }
)

// modes of the conversation pane.
const (
	modeChat = iota
	modeSwitcher
	modeHelp
	modeSearch
)

// Model is the terminal UI's state. Every change comes through Update;
// everything it asks of the node it asks through the API, as commands
// whose replies come back as messages.
type Model struct {
	api   api.API
	files api.Files // nil when the node moves no files
	opts  Options
	loc   *time.Location
	st    styles
	dark  bool

	width, height int

	self     api.Self
	peers    map[string]*api.Peer // by id
	rooms    map[string]api.Room  // every room the node knows of, by name
	convs    map[string]*conv     // by key: "#room" or a peer id
	cur      string               // the open conversation's key
	started  bool                 // the first snapshot came
	streamUp bool

	input    textarea.Model
	history  []string // lines sent, oldest first
	histPos  int      // len(history) when not browsing it
	histSave string   // the line being written when browsing began
	comp     *completion

	mode      int
	sw        switcher
	search    *conv
	searchFor string
	notice    string
	sidebar   bool
	quitting  bool

	transfers map[string]*xfer // by id

	now func() time.Time // the clock, for what comes without a time

	typist     api.Typist           // nil when the node sends no typing indicators
	typingSent map[string]time.Time // by conversation: when the peer was last told
	typingFrom map[typingKey]typist // who is shown typing where, until when

	roomsDue   bool          // a read of the rooms' counts is on its way
	roomsDelay time.Duration // how long after a presence change it starts

	// after is tea.Tick: a message fn makes once d has passed. Tests
	// replace it, not to wait on timers.
	after func(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd

	// early holds the states of sends whose reply came before the
	// message's event, until the event (at most maxEarly).
	early map[string]string
}

const maxEarly = 256

// New returns a model that talks to the node through a.
func New(a api.API, opts Options) *Model {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 15 * time.Second
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	in := textarea.New()
	in.ShowLineNumbers = false
	in.Prompt = "> "
	in.Placeholder = "type a message, /help for commands"
	in.CharLimit = 64 << 10
	in.DynamicHeight = true
	in.MinHeight = 1
	in.MaxHeight = 5
	in.SetHeight(1)
	in.KeyMap.InsertNewline = key.NewBinding(key.WithKeys("alt+enter", "ctrl+j"))
	in.SetVirtualCursor(false)
	m := &Model{
		api: a, opts: opts, loc: loc, dark: true,
		peers: map[string]*api.Peer{}, rooms: map[string]api.Room{}, convs: map[string]*conv{},
		input: in, sidebar: true, width: 80, height: 24, early: map[string]string{},
	}
	m.now = time.Now
	m.roomsDelay, m.after = roomsEvery, tea.Tick
	m.files, _ = a.(api.Files)
	m.typist, _ = a.(api.Typist)
	m.typingSent, m.typingFrom = map[string]time.Time{}, map[typingKey]typist{}
	m.transfers = map[string]*xfer{}
	m.setStyles(true)
	m.input.Focus()
	return m
}

func (m *Model) setStyles(dark bool) {
	m.dark = dark
	m.st = newStyles(dark)
	s := textarea.DefaultStyles(dark)
	s.Focused.CursorLine = lipgloss.NewStyle()
	s.Focused.Base = lipgloss.NewStyle()
	s.Blurred.Base = lipgloss.NewStyle()
	s.Focused.Placeholder = m.st.dim
	s.Focused.Prompt = lipgloss.NewStyle().Bold(true)
	// The terminal's own cursor: a blinking one drawn by the UI would
	// wake it twice a second to draw the screen again.
	s.Cursor.Blink = false
	m.input.SetStyles(s)
	for _, c := range m.convs {
		for _, e := range c.entries {
			e.lines = nil
		}
	}
}

// Init asks the terminal whether its background is light or dark.
func (m *Model) Init() tea.Cmd { return tea.RequestBackgroundColor }

// call runs f against the API with the call timeout, as a command.
func (m *Model) call(f func(ctx context.Context) tea.Msg) tea.Cmd {
	timeout := m.opts.CallTimeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return f(ctx)
	}
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.SetWidth(max(10, m.width))
		return m, m.afterMove()
	case tea.BackgroundColorMsg:
		m.setStyles(msg.IsDark())
		return m, nil
	case tea.PasteMsg:
		if m.mode == modeSwitcher {
			m.sw.query += strings.ReplaceAll(safeInput(msg.Content), "\n", " ")
			m.sw.pick = 0
			return m, nil
		}
		before := m.input.Value()
		m.input.InsertString(safeInput(msg.Content))
		m.comp = nil
		return m, m.typed(before)
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case eventMsg:
		return m, m.event(msg.ev)
	case streamEndMsg:
		m.streamUp = false
		if msg.err != nil {
			m.notice = "lost the node's event stream (" + clean(msg.err.Error()) + "); reconnecting…"
		}
		return m, nil
	case historyMsg:
		return m, m.gotHistory(msg)
	case indexMsg:
		m.gotIndex(msg)
		return m, nil
	case sentMsg:
		return m, m.gotSent(msg)
	case roomMsg:
		return m, m.gotRoom(msg)
	case statusMsg:
		if msg.err != nil {
			m.notice = "status not changed: " + clean(msg.err.Error())
			return m, nil
		}
		m.self.State, m.self.StatusText = msg.reply.State, msg.reply.Text
		m.notice = "you are " + msg.reply.State
		if msg.reply.Text != "" {
			m.notice += ": " + clean(msg.reply.Text)
		}
		return m, nil
	case searchMsg:
		m.gotSearch(msg)
		return m, nil
	case readMsg:
		if msg.err != nil {
			m.notice = "could not mark messages read: " + clean(msg.err.Error())
		}
		return m, nil
	case noticeMsg:
		m.notice = msg.text
		return m, nil
	case transfersMsg:
		m.gotTransfers(msg)
		return m, nil
	case offeredMsg:
		m.gotOffered(msg)
		return m, nil
	case settledMsg:
		m.gotSettled(msg)
		return m, nil
	case typingExpiredMsg:
		return m, nil // drawn again without who stopped typing
	case roomsMsg:
		m.gotRooms(msg)
		return m, nil
	}
	// Anything else (the cursor's blink) is the input's.
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// safeInput keeps pasted text from driving the terminal as it is echoed:
// line breaks stay, tabs become spaces, other invisible runes go.
func safeInput(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\t", "    ")
	return strings.Map(func(r rune) rune {
		if r != '\n' && termtext.Invisible(r) {
			return -1
		}
		return r
	}, s)
}

// ---- events ----

func (m *Model) event(ev api.Event) tea.Cmd {
	cmd := m.apply(ev)
	if m.cur == "" && m.started {
		// Nothing was open (a first start: the node joins #general
		// after the snapshot): open the room when it comes, not
		// whoever happens to be seen first.
		if k := m.firstConv(); strings.HasPrefix(k, "#") {
			cmd = tea.Batch(cmd, m.open(k))
		}
	}
	return cmd
}

func (m *Model) apply(ev api.Event) tea.Cmd {
	switch v := ev.(type) {
	case api.Snapshot:
		return m.snapshot(v)
	case api.Presence:
		p := m.peers[v.Peer.ID]
		if p == nil {
			p = &api.Peer{ID: v.Peer.ID}
			m.peers[v.Peer.ID] = p
		}
		p.Name, p.State, p.StatusText, p.Addr, p.Verified = v.Peer.Name, v.State, v.StatusText, v.Addr, v.Verified
		p.Reachable, p.SeenBy = v.Reachable, v.SeenBy
		p.Trusted, p.Warning = v.Peer.Trusted, v.Peer.Warning
		m.conv(v.Peer.ID)
		if v.Change != api.ChangeStatus && v.Change != api.ChangeVerified {
			// Someone came or went: the rooms' "online" counts change
			// with it, and no room event says so.
			return m.refreshRooms()
		}
	case api.Message:
		return m.message(v)
	case api.Receipt:
		for _, c := range m.convs {
			if !c.ids[v.ID] {
				continue
			}
			for _, e := range c.entries {
				if e.id == v.ID && stateRank(v.State) > stateRank(e.state) {
					e.state, e.lines = v.State, nil
				}
			}
		}
	case api.RoomChange:
		m.rooms[v.Room.Name] = v.Room
		c := m.convs[v.Room.Name]
		if v.Peer.ID == m.self.ID {
			if v.Room.Joined {
				c = m.conv(v.Room.Name)
				c.joined = true
			} else if c != nil {
				c.joined = false
			}
		}
		if c != nil {
			c.online, c.total = v.Room.MembersOnline, v.Room.MembersTotal
			if c.loaded {
				kind := "join"
				if v.Change == api.RoomLeft {
					kind = "leave"
				}
				c.appendEntry(&entry{fromID: v.Peer.ID, fromName: v.Peer.Name, kind: kind, t: time.Now(), room: v.Room.Name})
			}
		}
		if v.Peer.ID == m.self.ID && !v.Room.Joined && m.cur == v.Room.Name {
			return m.open(m.firstConv())
		}
	case api.FileOffer:
		return m.fileOffer(v)
	case api.TransferChange:
		return m.transferChange(v)
	case api.Typing:
		return m.peerTyping(v)
	case api.SelfChange:
		// Set here or by another client (lanchat away in a terminal):
		// either way it is this person's state now.
		m.self.Name, m.self.State, m.self.StatusText = v.Self.Name, v.Self.State, v.Self.StatusText
	case api.Warning:
		m.notice = "node: " + clean(v.Text)
	case api.Resync:
		m.notice = "fell behind the node's events; reloading"
	case api.Ready:
		m.self.Addr, m.self.Port, m.self.GossipPort, m.self.MDNS = v.Addr, v.Port, v.GossipPort, v.MDNS
	}
	return nil
}

func stateRank(s string) int {
	switch s {
	case "queued":
		return 1
	case "sent":
		return 2
	case "delivered":
		return 3
	case "read":
		return 4
	}
	return 0
}

// snapshot (re)starts from the node's state: the first one on opening,
// later ones after a resync or a reconnect. What is held may be stale,
// so it is dropped and fetched again; the input line is left alone.
func (m *Model) snapshot(s api.Snapshot) tea.Cmd {
	m.streamUp = true
	m.self = s.Self
	m.peers = map[string]*api.Peer{}
	for i := range s.Peers {
		p := s.Peers[i]
		if p.ID == s.Self.ID {
			continue
		}
		m.peers[p.ID] = &p
	}
	m.rooms = map[string]api.Room{}
	for _, c := range m.convs {
		c.reset()
		if c.room {
			c.joined = false
		} else {
			c.unread, c.mention = 0, false // counted again below, by the node
		}
	}
	for _, r := range s.Rooms {
		m.rooms[r.Name] = r
		if r.Joined {
			c := m.conv(r.Name)
			c.joined, c.unread, c.online, c.total = true, r.Unread, r.MembersOnline, r.MembersTotal
		}
	}
	for id := range m.peers {
		m.conv(id)
	}
	// People's unread counts, from the node's history: whoever wrote
	// while no UI was open, seen since the node started or not.
	for _, u := range s.Unread {
		id := u.Peer.ID
		if id == "" || id == s.Self.ID || u.Unread <= 0 {
			continue
		}
		if m.peers[id] == nil {
			m.peers[id] = &api.Peer{ID: id, Name: u.Peer.Name, State: "offline", Trusted: u.Peer.Trusted, Warning: u.Peer.Warning}
		}
		m.conv(id).unread = u.Unread
	}
	m.placeAllTransfers()
	if m.started {
		m.notice = "reloaded from the node"
	}
	m.started = true
	cmds := []tea.Cmd{m.fetchIndex(), m.fetchTransfers()}
	if c := m.convs[m.cur]; c == nil || (c.room && !c.joined) {
		m.cur = m.firstConv()
	}
	if m.cur != "" {
		cmds = append(cmds, m.open(m.cur))
	}
	return tea.Batch(cmds...)
}

// roomsEvery is how long after a peer comes or goes the rooms' counts
// are read again: one read for a burst of changes (a whole office
// arriving at nine).
const roomsEvery = time.Second

type roomsMsg struct {
	rooms []api.Room
	err   error
}

// refreshRooms reads the rooms' counts again in a while, unless a read
// is due already.
func (m *Model) refreshRooms() tea.Cmd {
	if m.roomsDue {
		return nil
	}
	m.roomsDue = true
	a, timeout := m.api, m.opts.CallTimeout
	return m.after(m.roomsDelay, func(time.Time) tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rs, err := a.Rooms(ctx)
		return roomsMsg{rs, err}
	})
}

// gotRooms takes the rooms' member counts; unread counts stay the UI's,
// which follows every message and read since the snapshot.
func (m *Model) gotRooms(msg roomsMsg) {
	m.roomsDue = false
	if msg.err != nil {
		return // the next change asks again; the counts are only stale
	}
	for _, r := range msg.rooms {
		m.rooms[r.Name] = r
		if c := m.convs[r.Name]; c != nil && c.room {
			c.online, c.total = r.MembersOnline, r.MembersTotal
		}
	}
}

// fetchIndex reads the newest messages of every conversation once, for
// who was talked to before and how recently (the switcher and Alt-A
// order by it); the unread counts come with the snapshot.
func (m *Model) fetchIndex() tea.Cmd {
	return m.call(func(ctx context.Context) tea.Msg {
		es, err := m.api.History(ctx, api.HistoryQuery{Limit: 1000})
		return indexMsg{es, err}
	})
}

func (m *Model) gotIndex(msg indexMsg) {
	if msg.err != nil {
		m.notice = "could not read the history: " + clean(msg.err.Error())
		return
	}
	for _, h := range msg.entries {
		if h.Room != "" {
			c := m.convs[h.Room]
			if c == nil {
				continue
			}
			if h.Time.After(c.activity) {
				c.activity = h.Time
			}
			// The node counts a room's unread, not its mentions: an
			// unread one among the newest marks the room, as it would
			// have had the UI been open when it came.
			if !h.Outgoing && h.State != "read" && c.unread > 0 && h.Room != m.cur && slices.Contains(h.Mentions, m.self.ID) {
				c.mention = true
			}
			continue
		}
		other := h.From.ID
		if h.Outgoing {
			other = h.To.ID
		}
		if other == "" || other == m.self.ID {
			continue
		}
		if m.peers[other] == nil {
			name := h.From.Name
			if h.Outgoing {
				name = h.To.Name
			}
			m.peers[other] = &api.Peer{ID: other, Name: name, State: "offline"}
		}
		c := m.conv(other)
		if h.Time.After(c.activity) {
			c.activity = h.Time
		}
	}
}

func (m *Model) message(v api.Message) tea.Cmd {
	key := v.Room
	if key == "" {
		key = v.From.ID
		if v.Outgoing {
			key = v.To.ID
		}
		if m.peers[key] == nil {
			ref := v.From
			if v.Outgoing {
				ref = v.To
			}
			m.peers[key] = &api.Peer{ID: key, Name: ref.Name, State: "offline"}
		}
	}
	if !v.Outgoing {
		m.stoppedTyping(key, v.From.ID) // what was being typed has come
	}
	c := m.conv(key)
	e := entryOfMessage(v, m.self.ID)
	if v.Outgoing {
		e.state = "sent"
		if st, ok := m.early[v.ID]; ok {
			e.state = st
			delete(m.early, v.ID)
		}
	}
	if c.loaded {
		if !c.appendEntry(e) {
			return nil
		}
	} else if e.t.After(c.activity) {
		c.activity = e.t
	}
	if v.Outgoing {
		return nil
	}
	if key == m.cur && m.mode == modeChat && c.scroll == 0 {
		return m.markShown()
	}
	c.unread++
	if e.mentions {
		c.mention = true
	}
	if key != m.cur && (!c.room || e.mentions) {
		// A new direct message or mention elsewhere: the bell, and a
		// desktop notification where there is one.
		title := clean(v.From.Name)
		if v.Room != "" {
			title += " in " + clean(v.Room)
		}
		return tea.Batch(tea.Raw("\a"), m.notifyText(title, v.Text))
	}
	return nil
}

// maxNotifyBody bounds what a notification shows of a message.
const maxNotifyBody = 200

// notifyText shows a notification on the desktop, if the UI was given a
// way to; title is made safe already, text not.
func (m *Model) notifyText(title, text string) tea.Cmd {
	if m.opts.Notify == nil {
		return nil
	}
	body := []rune(termtext.Line(strings.ReplaceAll(text, "\n", " ")))
	if len(body) > maxNotifyBody {
		body = append(body[:maxNotifyBody], '…')
	}
	// Notification servers read a little HTML in the body.
	t, b := title, html.EscapeString(string(body))
	notify := m.opts.Notify
	return func() tea.Msg {
		notify(t, b)
		return nil
	}
}

// conv returns the conversation for key, making it if new.
func (m *Model) conv(key string) *conv {
	c := m.convs[key]
	if c == nil {
		c = newConv(key)
		m.convs[key] = c
	}
	return c
}

// order is the sidebar's: rooms this node is in by name, then people
// by name. Alt-1…9, Ctrl-N and Ctrl-P follow it.
func (m *Model) order() []string {
	var rooms, people []string
	for k, c := range m.convs {
		switch {
		case c.room && c.joined:
			rooms = append(rooms, k)
		case !c.room && m.peers[k] != nil:
			people = append(people, k)
		}
	}
	slices.Sort(rooms)
	slices.SortFunc(people, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.ToLower(m.peers[a].Name), strings.ToLower(m.peers[b].Name)), cmp.Compare(a, b))
	})
	return append(rooms, people...)
}

func (m *Model) firstConv() string {
	if c := m.convs["#general"]; c != nil && c.joined {
		return "#general"
	}
	if o := m.order(); len(o) > 0 {
		return o[0]
	}
	return ""
}

// title names a conversation.
func (m *Model) title(key string) string {
	if strings.HasPrefix(key, "#") {
		return key
	}
	if p := m.peers[key]; p != nil && p.Name != "" {
		return clean(p.Name)
	}
	return short(key)
}

// open makes key the open conversation, fetching its newest page the
// first time.
func (m *Model) open(key string) tea.Cmd {
	if key == "" {
		return nil
	}
	if m.mode == modeSearch {
		m.mode = modeChat
	}
	m.cur = key
	c := m.conv(key)
	c.scroll = 0
	if len(c.entries) > 2*pageSize {
		c.trim(pageSize)
	}
	if !c.loaded && !c.loading {
		c.loading = true
		return m.fetch(key, "")
	}
	return m.markShown()
}

func (m *Model) fetch(key, before string) tea.Cmd {
	return m.call(func(ctx context.Context) tea.Msg {
		es, err := m.api.History(ctx, api.HistoryQuery{Peer: key, Limit: pageSize, Before: before})
		return historyMsg{key: key, before: before, entries: es, err: err}
	})
}

func (m *Model) gotHistory(msg historyMsg) tea.Cmd {
	c := m.convs[msg.key]
	if c == nil {
		return nil
	}
	c.loading = false
	if msg.err != nil {
		m.notice = "could not read the history of " + m.title(msg.key) + ": " + clean(msg.err.Error())
		c.loaded = true
		return nil
	}
	page := make([]*entry, 0, len(msg.entries))
	for _, h := range msg.entries {
		page = append(page, entryOf(h, m.self.ID))
	}
	if msg.before == "" {
		// The newest page: events that came while it was asked for are
		// held already and stay.
		held := c.entries
		c.entries, c.ids = nil, map[string]bool{}
		c.prepend(page)
		for _, e := range held {
			c.appendEntry(e)
		}
		c.loaded = true
	} else {
		if len(c.entries) == 0 || c.entries[0].id != msg.before {
			return nil // the window moved meanwhile; the next scroll asks again
		}
		c.prepend(page)
	}
	if len(msg.entries) < pageSize {
		c.complete = true
	}
	return m.afterMove()
}

// ---- sizes and the visible window ----

// layout is the geometry of the screen.
func (m *Model) layout() (sideW, convW, bodyH int) {
	// The input's height as drawn: its lines as wrapped, not as typed.
	inputH := min(5, max(1, m.input.Height()))
	bodyH = max(1, m.height-2-inputH)
	if m.sidebar && m.width >= 60 {
		sideW = min(28, max(18, m.width/4))
	}
	convW = m.width
	if sideW > 0 {
		convW -= sideW + 1
	}
	return sideW, max(10, convW), bodyH
}

// afterMove keeps the scroll within what is held, asks for an older page
// when the view nears the top of it, and marks what is shown read.
func (m *Model) afterMove() tea.Cmd {
	c := m.convs[m.cur]
	if c == nil || m.mode == modeSearch {
		return nil
	}
	_, w, h := m.layout()
	held, top := m.linesHeld(c, w, c.scroll+2*h)
	var cmds []tea.Cmd
	if top {
		if c.scroll > held-h {
			c.scroll = max(0, held-h)
		}
		if !c.complete && c.loaded && !c.loading && len(c.entries) > 0 && len(c.entries) < maxHeld {
			c.loading = true
			cmds = append(cmds, m.fetch(c.key, c.entries[0].id))
		}
	}
	if c.scroll == 0 && len(c.entries) > 4*pageSize {
		c.trim(2 * pageSize) // back at the bottom: let go of what was scrolled through
	}
	cmds = append(cmds, m.markShown())
	return tea.Batch(cmds...)
}

// markShown marks read the received messages on screen in the open
// conversation: a person has seen them, so their authors get receipts.
func (m *Model) markShown() tea.Cmd {
	c := m.convs[m.cur]
	if c == nil || !c.loaded || m.mode != modeChat {
		return nil // what covers the pane hides the messages
	}
	_, w, h := m.layout()
	_, shown, _ := m.window(c, w, h, c.scroll)
	var ids []string
	for _, e := range shown {
		if !e.outgoing && e.kind == "text" && e.state != "read" && e.id != "" {
			e.state = "read"
			ids = append(ids, e.id)
		}
	}
	if c.scroll == 0 {
		c.unread, c.mention = 0, false
	} else {
		c.unread = max(0, c.unread-len(ids))
	}
	if len(ids) == 0 {
		return nil
	}
	return m.call(func(ctx context.Context) tea.Msg {
		return readMsg{m.api.MarkRead(ctx, api.ReadRequest{IDs: ids})}
	})
}

// ---- view ----

// View implements tea.Model.
func (m *Model) View() tea.View {
	var v tea.View
	v.AltScreen = true
	v.WindowTitle = "lanchat"
	if m.quitting {
		return v
	}
	v.SetContent(m.render())
	if m.mode == modeChat || m.mode == modeSearch {
		if cur := m.input.Cursor(); cur != nil {
			_, _, bodyH := m.layout()
			cur.Y += 2 + bodyH // below the header, the body and the status bar
			v.Cursor = cur
		}
	}
	return v
}

// render draws the whole screen, one line per row.
func (m *Model) render() string {
	sideW, convW, bodyH := m.layout()
	var b strings.Builder
	b.WriteString(fit(m.header(), m.width))
	b.WriteByte('\n')
	var side []string
	if sideW > 0 {
		side = m.sidebarLines(sideW, bodyH)
	}
	pane := m.paneLines(convW, bodyH)
	sep := m.st.border.Render("│")
	for r := range bodyH {
		if sideW > 0 {
			l := ""
			if r < len(side) {
				l = side[r]
			}
			b.WriteString(fit(l, sideW))
			b.WriteString(sep)
		}
		l := ""
		if r < len(pane) {
			l = pane[r]
		}
		b.WriteString(fit(l, convW))
		b.WriteByte('\n')
	}
	b.WriteString(m.st.status.Render(fit(m.statusLine(), m.width)))
	b.WriteByte('\n')
	b.WriteString(m.input.View())
	return b.String()
}

func (m *Model) header() string {
	switch m.mode {
	case modeSwitcher:
		return m.st.header.Render(" Switch to: ") + clean(m.sw.query) + "▏"
	case modeHelp:
		return m.st.header.Render(" Keys and commands") + m.st.dim.Render("  (Esc closes)")
	case modeSearch:
		return m.st.header.Render(" Search: "+clean(m.searchFor)) + m.st.dim.Render(fmt.Sprintf("  %d found · PgUp/PgDn · Esc closes", len(m.search.entries)))
	}
	if m.cur == "" {
		return m.st.header.Render(" lanchat")
	}
	c := m.convs[m.cur]
	var info string
	if c.room {
		info = m.st.dim.Render(fmt.Sprintf("  %d of %d members online", c.online, c.total))
	} else if p := m.peers[m.cur]; p != nil {
		info = "  " + m.st.peerDot(p) + " " + m.st.dim.Render(p.State)
		if unreachable(p) {
			// Online for the others, not for this node: what is sent waits.
			info += m.st.notice.Render(" — " + unreachableText(p.SeenBy))
		}
		if p.StatusText != "" {
			info += m.st.dim.Render(" — " + clean(p.StatusText))
		}
		if p.Warning != "" {
			info += m.st.notice.Render("  ! " + clean(p.Warning))
		}
	}
	more := ""
	if c.scroll > 0 {
		more = m.st.dim.Render("  ↑ scrolled back")
		if c.unread > 0 {
			more = m.st.notice.Render(fmt.Sprintf("  ↓ %d new", c.unread))
		}
	}
	return m.st.header.Render(" "+m.title(m.cur)) + info + more
}

func (m *Model) statusLine() string {
	online, total := 0, 0
	for _, p := range m.peers {
		total++
		if p.Online() {
			online++
		}
	}
	state := m.self.State
	if m.self.StatusText != "" {
		state += ": " + clean(m.self.StatusText)
	}
	me := " " + clean(m.self.Name) + " (" + state + ")"
	if !m.streamUp && m.started {
		me += " · disconnected"
	}
	if t := m.typingLine(); t != "" {
		me += " · " + t
	}
	if m.notice != "" {
		// What just happened matters more than the rest, which is
		// back once Esc clears it.
		return me + " │ " + m.notice
	}
	parts := []string{me, fmt.Sprintf("%d of %d peers online", online, total)}
	if n, waiting := m.transferCounts(); n > 0 || waiting > 0 {
		// Transfers elsewhere are out of sight: their count is not.
		var t []string
		if n > 0 {
			t = append(t, fmt.Sprintf("⇅ %d moving", n))
		}
		if waiting > 0 {
			t = append(t, fmt.Sprintf("%d %s to answer", waiting, plural(waiting, "offer", "offers")))
		}
		parts = append(parts, strings.Join(t, ", "))
	}
	if m.self.Addr != "" {
		net := m.self.Addr
		if m.self.MDNS {
			net += " mDNS"
		}
		parts = append(parts, net)
	}
	if m.opts.Mode != "" {
		parts = append(parts, m.opts.Mode)
	}
	return strings.Join(parts, " · ") + " │ F1 help"
}

// sidebarLines lists rooms and people; the open conversation is marked
// and kept in view.
func (m *Model) sidebarLines(w, h int) []string {
	var lines []string
	curLine := 0
	order := m.order()
	roomsDone := false
	lines = append(lines, m.st.dim.Render(" Rooms"))
	for i, k := range order {
		c := m.convs[k]
		if !c.room && !roomsDone {
			roomsDone = true
			lines = append(lines, m.st.dim.Render(" People"))
		}
		badge := ""
		if c.unread > 0 && k != m.cur {
			badge = fmt.Sprint(c.unread)
		}
		if c.mention && k != m.cur {
			badge += "@"
		}
		if badge != "" {
			badge = " " + m.st.badge.Render(badge)
		}
		num := "  "
		if i < 9 {
			num = m.st.dim.Render(fmt.Sprint(" ", i+1))
		}
		var head string
		if c.room {
			head = num + " " + clean(k)
		} else {
			p := m.peers[k]
			head = num + " " + m.st.peerDot(p) + " " + clean(p.Name)
			if p.Warning != "" {
				head += " " + m.st.badge.Render("!") // not the contact it claims to be: the status line says why
			}
		}
		nameW := w - ansi.StringWidth(badge)
		line := fit(head, nameW) + badge
		if k == m.cur {
			line = m.st.selected.Render(ansi.Strip(fit(head, nameW)) + ansi.Strip(badge))
			curLine = len(lines)
		}
		lines = append(lines, line)
		if !c.room {
			if p := m.peers[k]; p.StatusText != "" {
				lines = append(lines, m.st.dim.Render(fit("     "+clean(p.StatusText), w)))
			}
		}
	}
	if !roomsDone {
		lines = append(lines, m.st.dim.Render(" People"), m.st.dim.Render("   nobody yet"))
	}
	if len(lines) > h && curLine >= h {
		off := min(curLine-h+1, len(lines)-h)
		lines = lines[off:]
	}
	return lines
}

// paneLines is the conversation pane, or what covers it.
func (m *Model) paneLines(w, h int) []string {
	switch m.mode {
	case modeSwitcher:
		return m.switcherLines(w, h)
	case modeHelp:
		return helpLines(m.st, w)
	case modeSearch:
		lines, _, _ := m.window(m.search, w, h, m.search.scroll)
		return lines
	}
	c := m.convs[m.cur]
	if c == nil {
		return []string{"", m.st.dim.Render("  Waiting for the node…")}
	}
	if c.loaded && len(c.entries) == 0 {
		return []string{m.st.dim.Render("· no messages yet: say hello ·")}
	}
	lines, _, _ := m.window(c, w, h, c.scroll)
	if len(lines) < h {
		// Anchored to the bottom, as a chat is.
		lines = append(make([]string, h-len(lines)), lines...)
	}
	return lines
}
