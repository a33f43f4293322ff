package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"

	"lanchat/node/api"
)

// key handles one key press: the covering pane's keys first, then the
// keys that work everywhere, then the input line's.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	s := k.String()
	switch m.mode {
	case modeHelp:
		if s == "esc" || s == "q" || s == "?" || s == "f1" || s == "enter" {
			m.mode = modeChat
			return m.afterMove() // what the help covered is seen now
		}
		return nil
	case modeSwitcher:
		return m.switcherKey(k)
	case modeSearch:
		switch s {
		case "esc":
			m.mode = modeChat
			return m.afterMove()
		case "pgup":
			_, _, h := m.layout()
			m.search.scroll += max(1, h-2)
			_, w, _ := m.layout()
			if held, top := m.linesHeld(m.search, w, m.search.scroll+h); top {
				m.search.scroll = min(m.search.scroll, max(0, held-h))
			}
			return nil
		case "pgdown":
			_, _, h := m.layout()
			m.search.scroll = max(0, m.search.scroll-max(1, h-2))
			return nil
		}
	}
	if s != "tab" {
		m.comp = nil
	}
	switch s {
	case "ctrl+c":
		if m.input.Value() != "" {
			m.input.Reset()
			return nil
		}
		return m.quit()
	case "ctrl+d":
		if m.input.Value() == "" {
			return m.quit()
		}
	case "ctrl+k":
		m.mode, m.sw = modeSwitcher, switcher{}
		return nil
	case "f1":
		m.mode = modeHelp
		return nil
	case "?":
		if m.input.Value() == "" {
			m.mode = modeHelp
			return nil
		}
	case "f2", "alt+s":
		m.sidebar = !m.sidebar
		return m.afterMove()
	case "ctrl+n", "ctrl+p":
		o := m.order()
		if len(o) == 0 {
			return nil
		}
		i := slices.Index(o, m.cur)
		if s == "ctrl+n" {
			i = (i + 1) % len(o)
		} else {
			i = (i - 1 + len(o)) % len(o)
		}
		return m.open(o[i])
	case "alt+a":
		return m.nextActive()
	case "alt+y", "alt+n":
		// One key for the newest offer waiting here, as /accept and
		// /decline without an id; elsewhere it says where one waits.
		cmd, _ := m.settle(s == "alt+y", "")
		return cmd
	case "pgup", "pgdown", "ctrl+home", "ctrl+end":
		c := m.convs[m.cur]
		if c == nil {
			return nil
		}
		_, _, h := m.layout()
		switch s {
		case "pgup":
			c.scroll += max(1, h-2)
		case "pgdown":
			c.scroll = max(0, c.scroll-max(1, h-2))
		case "ctrl+home":
			c.scroll += 1 << 20
		case "ctrl+end":
			c.scroll = 0
		}
		return m.afterMove()
	case "esc":
		m.notice = ""
		return nil
	case "tab":
		m.complete()
		return nil
	case "enter":
		return m.submit()
	case "up", "down":
		if m.input.LineCount() <= 1 && m.browseHistory(s == "up") {
			return nil
		}
	}
	if len(s) == 5 && strings.HasPrefix(s, "alt+") && s[4] >= '1' && s[4] <= '9' {
		if o := m.order(); int(s[4]-'1') < len(o) {
			return m.open(o[s[4]-'1'])
		}
		return nil
	}
	before := m.input.Value()
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return tea.Batch(cmd, m.typed(before))
}

func (m *Model) quit() tea.Cmd {
	m.quitting = true
	return tea.Quit
}

// nextActive opens the next conversation with unread messages after the
// open one: first those that named this node or are direct, then any.
func (m *Model) nextActive() tea.Cmd {
	o := m.order()
	i := slices.Index(o, m.cur)
	for _, urgent := range []bool{true, false} {
		for j := 1; j <= len(o); j++ {
			k := o[(i+j+len(o))%len(o)]
			c := m.convs[k]
			if k == m.cur || c.unread == 0 {
				continue
			}
			if !urgent || c.mention || !c.room {
				return m.open(k)
			}
		}
	}
	m.notice = "nothing unread"
	return nil
}

// browseHistory moves through the lines sent before, as a shell does.
func (m *Model) browseHistory(up bool) bool {
	if len(m.history) == 0 {
		return false
	}
	if m.histPos == len(m.history) {
		m.histSave = m.input.Value()
	}
	switch {
	case up && m.histPos > 0:
		m.histPos--
	case !up && m.histPos < len(m.history):
		m.histPos++
	default:
		return true
	}
	if m.histPos == len(m.history) {
		m.input.SetValue(m.histSave)
	} else {
		m.input.SetValue(m.history[m.histPos])
	}
	m.input.CursorEnd()
	return true
}

// maxInputHistory bounds the lines kept for Up and Down.
const maxInputHistory = 200

// submit sends the input line, or runs it as a command.
func (m *Model) submit() tea.Cmd {
	text := m.input.Value()
	if strings.TrimSpace(text) == "" {
		return nil
	}
	m.history = append(m.history, text)
	if len(m.history) > maxInputHistory {
		m.history = m.history[1:]
	}
	m.histPos, m.histSave = len(m.history), ""
	if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
		cmd, ok := m.command(text)
		if ok {
			m.input.Reset()
		}
		return cmd
	}
	text = strings.TrimPrefix(text, "/") // "//x" sends "/x"
	if m.cur == "" {
		m.notice = "no conversation open: Ctrl-K to pick one, or /msg NAME"
		return nil
	}
	if c := m.convs[m.cur]; c.room && !c.joined {
		m.notice = "you are not in " + m.cur + ": /join " + m.cur
		return nil
	}
	m.input.Reset()
	return m.send(m.cur, text)
}

func (m *Model) send(key, text string) tea.Cmd {
	return m.call(func(ctx context.Context) tea.Msg {
		r, err := m.api.Send(ctx, api.SendRequest{To: key, Text: text})
		return sentMsg{key: key, text: text, reply: r, err: err}
	})
}

func (m *Model) gotSent(msg sentMsg) tea.Cmd {
	if msg.err != nil {
		m.notice = "not sent to " + m.title(msg.key) + ": " + clean(msg.err.Error())
		if m.input.Value() == "" {
			m.input.SetValue(msg.text) // give the text back to try again
		}
		return nil
	}
	found := false
	if c := m.convs[msg.key]; c != nil && c.ids[msg.reply.ID] {
		for _, e := range c.entries {
			if e.id == msg.reply.ID {
				found = true
				if stateRank(msg.reply.State) > stateRank(e.state) {
					e.state, e.lines = msg.reply.State, nil
				}
			}
		}
	}
	if !found && msg.reply.ID != "" {
		if len(m.early) >= maxEarly {
			clear(m.early)
		}
		m.early[msg.reply.ID] = msg.reply.State
	}
	if msg.reply.State == "queued" {
		m.notice = m.title(msg.key) + " is offline: the message waits in the outbox"
	}
	return nil
}

// ---- commands ----

// commandNames, for Tab and /help.
var commandNames = []string{"/msg", "/join", "/leave", "/who", "/status", "/away", "/search", "/help", "/quit", "/file", "/accept", "/decline"}

// command runs a slash command; ok is false when the line should stay in
// the input (a mistake to correct).
func (m *Model) command(line string) (tea.Cmd, bool) {
	name, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(name) {
	case "/quit", "/exit":
		return m.quit(), true
	case "/help":
		m.mode = modeHelp
		return nil, true
	case "/msg", "/query":
		who, text, _ := strings.Cut(rest, " ")
		if who == "" {
			m.notice = "usage: /msg NAME [text]"
			return nil, false
		}
		id, err := m.resolve(who)
		if err != "" {
			m.notice = err
			return nil, false
		}
		cmd := m.open(id)
		if text = strings.TrimSpace(text); text != "" {
			cmd = tea.Batch(cmd, m.send(id, text))
		}
		return cmd, true
	case "/join":
		room := roomName(rest)
		if room == "" {
			m.notice = "usage: /join #room"
			return nil, false
		}
		return m.call(func(ctx context.Context) tea.Msg {
			r, err := m.api.JoinRoom(ctx, api.RoomRequest{Room: room})
			return roomMsg{room: r, join: true, err: err}
		}), true
	case "/leave", "/part":
		room := roomName(rest)
		if room == "" {
			if !strings.HasPrefix(m.cur, "#") {
				m.notice = "usage: /leave #room (this is not a room)"
				return nil, false
			}
			room = m.cur
		}
		return m.call(func(ctx context.Context) tea.Msg {
			r, err := m.api.LeaveRoom(ctx, api.RoomRequest{Room: room})
			return roomMsg{room: r, err: err}
		}), true
	case "/who", "/names":
		room := roomName(rest)
		if room == "" {
			if !strings.HasPrefix(m.cur, "#") {
				m.notice = "usage: /who #room (this is not a room)"
				return nil, false
			}
			room = m.cur
		}
		self := m.self.ID // the command runs beside Update: nothing of m but the API
		return m.call(func(ctx context.Context) tea.Msg {
			ms, err := m.api.RoomMembers(ctx, room)
			if err != nil {
				return noticeMsg{room + ": " + clean(err.Error())}
			}
			return noticeMsg{describeMembers(room, self, ms)}
		}), true
	case "/status":
		state, text, _ := strings.Cut(rest, " ")
		switch state {
		case "available", "away", "busy":
		default:
			m.notice = "usage: /status available|away|busy [text]"
			return nil, false
		}
		return m.setStatus(state, strings.TrimSpace(text)), true
	case "/away":
		if rest == "" && m.self.State == "away" {
			return m.setStatus("available", ""), true
		}
		return m.setStatus("away", rest), true
	case "/back":
		return m.setStatus("available", ""), true
	case "/search":
		if rest == "" {
			m.notice = "usage: /search WORDS"
			return nil, false
		}
		return m.call(func(ctx context.Context) tea.Msg {
			es, err := m.api.History(ctx, api.HistoryQuery{Search: rest, Limit: 500})
			return searchMsg{query: rest, entries: es, err: err}
		}), true
	case "/file", "/send":
		return m.offerFiles(rest)
	case "/accept":
		return m.settle(true, rest)
	case "/decline":
		return m.settle(false, rest)
	}
	m.notice = fmt.Sprintf("unknown command %s (/help lists them; //text sends a line starting with /)", clean(name))
	return nil, false
}

// describeMembers lists a room's members for the status line, those
// online first, each with a presence glyph that needs no colour.
func describeMembers(room, self string, ms []api.RoomMember) string {
	slices.SortStableFunc(ms, func(a, b api.RoomMember) int {
		switch {
		case a.Online == b.Online:
			return 0
		case a.Online:
			return -1
		}
		return 1
	})
	parts := make([]string, 0, len(ms))
	for _, r := range ms {
		name := clean(r.Name)
		if r.ID == self {
			name += " (you)"
		}
		parts = append(parts, presenceGlyph(r.State)+" "+name)
	}
	if len(parts) == 0 {
		return room + ": nobody"
	}
	return fmt.Sprintf("%s, %d: %s", room, len(ms), strings.Join(parts, ", "))
}

func presenceGlyph(state string) string {
	switch state {
	case "available":
		return "●"
	case "away":
		return "◐"
	case "busy":
		return "⊘"
	}
	return "○"
}

func (m *Model) setStatus(state, text string) tea.Cmd {
	return m.call(func(ctx context.Context) tea.Msg {
		r, err := m.api.SetStatus(ctx, api.StatusRequest{State: state, Text: text})
		return statusMsg{r, err}
	})
}

func roomName(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.HasPrefix(s, "#") {
		s = "#" + s
	}
	return s
}

func (m *Model) gotRoom(msg roomMsg) tea.Cmd {
	if msg.err != nil {
		m.notice = clean(msg.err.Error())
		return nil
	}
	r := msg.room
	m.rooms[r.Name] = r
	c := m.conv(r.Name)
	c.joined, c.online, c.total = r.Joined, r.MembersOnline, r.MembersTotal
	if msg.join {
		m.notice = "you are in " + r.Name
		return m.open(r.Name)
	}
	m.notice = "you left " + r.Name + " (its history stays)"
	if m.cur == r.Name {
		return m.open(m.firstConv())
	}
	return nil
}

// resolve finds a person by whole id, name (any case) or id prefix of
// four characters or more, as the node does.
func (m *Model) resolve(who string) (string, string) {
	if m.peers[who] != nil {
		return who, ""
	}
	var byName, byPrefix []string
	for id, p := range m.peers {
		if strings.EqualFold(p.Name, who) {
			byName = append(byName, id)
		}
		if len(who) >= 4 && strings.HasPrefix(id, strings.ToUpper(who)) {
			byPrefix = append(byPrefix, id)
		}
	}
	for _, ids := range [][]string{byName, byPrefix} {
		switch len(ids) {
		case 1:
			return ids[0], ""
		case 0:
			continue
		}
		slices.Sort(ids)
		short := make([]string, len(ids))
		for i, id := range ids {
			short[i] = id[:min(8, len(id))]
		}
		return "", fmt.Sprintf("%d people are called %s: use an id (%s)", len(ids), clean(who), strings.Join(short, ", "))
	}
	return "", "nobody called " + clean(who)
}

func (m *Model) gotSearch(msg searchMsg) {
	if msg.err != nil {
		m.notice = "search: " + clean(msg.err.Error())
		return
	}
	c := newConv("")
	c.loaded, c.complete = true, true
	for _, h := range msg.entries {
		e := entryOf(h, m.self.ID)
		e.label = h.Room
		if e.label == "" {
			other := h.From
			if h.Outgoing {
				other = h.To
			}
			e.label = other.Name
		}
		c.appendEntry(e)
	}
	m.search, m.searchFor, m.mode = c, msg.query, modeSearch
}

// ---- completion ----

// completion is the state of Tab pressed again: the line before the
// word, and the candidates it cycles through.
type completion struct {
	base    string
	matches []string
	i       int
	suffix  string // after a match: " ", or "" for paths (theirs is in the match)
}

func (m *Model) complete() {
	val := m.input.Value()
	if c := m.comp; c != nil && len(c.matches) > 0 && val == c.base+c.matches[c.i]+c.suffix {
		c.i = (c.i + 1) % len(c.matches)
		m.input.SetValue(c.base + c.matches[c.i] + c.suffix)
		m.input.CursorEnd()
		return
	}
	cut := strings.LastIndexAny(val, " \n") + 1
	base, word := val[:cut], val[cut:]
	var cands []string
	first := strings.TrimSpace(base) == ""
	cmdName, _, _ := strings.Cut(strings.TrimSpace(base), " ")
	if cmdName == "/file" || cmdName == "/send" {
		m.completePath(val)
		return
	}
	switch {
	case first && strings.HasPrefix(word, "/"):
		cands = commandNames
	case strings.HasPrefix(word, "#") || cmdName == "/join" || cmdName == "/leave":
		for name := range m.rooms {
			cands = append(cands, name)
		}
	case cmdName == "/status" && strings.Count(base, " ") == 1:
		cands = []string{"available", "away", "busy"}
	case strings.HasPrefix(word, "@"):
		for _, p := range m.peers {
			cands = append(cands, "@"+nameToken(p))
		}
	default:
		for _, p := range m.peers {
			cands = append(cands, nameToken(p))
		}
	}
	var matches []string
	for _, c := range cands {
		if strings.HasPrefix(strings.ToLower(c), strings.ToLower(word)) {
			matches = append(matches, c)
		}
	}
	if cmdName == "/join" || cmdName == "/leave" {
		if !strings.HasPrefix(word, "#") {
			for _, c := range cands {
				if strings.HasPrefix(c[1:], word) && !slices.Contains(matches, c) {
					matches = append(matches, c)
				}
			}
		}
	}
	slices.Sort(matches)
	matches = slices.Compact(matches)
	if len(matches) == 0 {
		m.notice = "no completion for " + clean(word)
		return
	}
	if len(matches) > 1 {
		m.notice = clean(strings.Join(matches[:min(8, len(matches))], " "))
	}
	m.comp = &completion{base: base, matches: matches, suffix: " "}
	m.input.SetValue(base + matches[0] + " ")
	m.input.CursorEnd()
}

// completePath completes /file's last argument from the disk: a folder
// ends in "/" so Tab goes on into it, a file in a space.
func (m *Model) completePath(val string) {
	cut := lastArgStart(val)
	base, word := val[:cut], val[cut:]
	matches := pathCompletions(word)
	slices.Sort(matches)
	if len(matches) == 0 {
		m.notice = "no file or folder " + clean(word) + "…"
		return
	}
	if len(matches) > 1 {
		names := make([]string, 0, 8)
		for _, p := range matches[:min(8, len(matches))] {
			p = strings.TrimSuffix(p, " ")
			names = append(names, p[strings.LastIndex(strings.TrimSuffix(p, "/"), "/")+1:])
		}
		m.notice = clean(strings.Join(names, " "))
		if len(matches) > 8 {
			m.notice += fmt.Sprintf(" (%d in all)", len(matches))
		}
	}
	m.comp = &completion{base: base, matches: matches}
	m.input.SetValue(base + matches[0])
	m.input.CursorEnd()
}

// nameToken is how a person is written in a command: the name, or an id
// prefix where the name would not survive being split at spaces.
func nameToken(p *api.Peer) string {
	if p.Name == "" || strings.ContainsAny(p.Name, " \t\n") || clean(p.Name) != p.Name {
		return p.ID[:min(8, len(p.ID))]
	}
	return p.Name
}
