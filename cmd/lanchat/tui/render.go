package tui

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

// styles are the UI's colours and attributes. The terminal's colour
// profile (NO_COLOR included) is applied by Bubble Tea when it writes
// them, so a colourless terminal gets the same layout with attributes
// (bold, reverse) at most; every mark also has a glyph, never colour alone.
type styles struct {
	header, status, dim, selected, name, self, mention, day, notice, badge, border lipgloss.Style
	available, away, busy, offline                                                 lipgloss.Style
}

func newStyles(dark bool) styles {
	c := lipgloss.LightDark(dark)
	return styles{
		header:    lipgloss.NewStyle().Bold(true),
		status:    lipgloss.NewStyle().Reverse(true),
		dim:       lipgloss.NewStyle().Foreground(c(lipgloss.Color("#767676"), lipgloss.Color("#8a8a8a"))),
		selected:  lipgloss.NewStyle().Reverse(true).Bold(true),
		name:      lipgloss.NewStyle().Bold(true).Foreground(c(lipgloss.Color("#005f87"), lipgloss.Color("#5fafd7"))),
		self:      lipgloss.NewStyle().Bold(true).Foreground(c(lipgloss.Color("#5f5f00"), lipgloss.Color("#afaf5f"))),
		mention:   lipgloss.NewStyle().Bold(true).Foreground(c(lipgloss.Color("#af0000"), lipgloss.Color("#ff5f5f"))),
		day:       lipgloss.NewStyle().Foreground(c(lipgloss.Color("#767676"), lipgloss.Color("#8a8a8a"))),
		notice:    lipgloss.NewStyle().Bold(true),
		badge:     lipgloss.NewStyle().Bold(true),
		border:    lipgloss.NewStyle().Foreground(c(lipgloss.Color("#bcbcbc"), lipgloss.Color("#4e4e4e"))),
		available: lipgloss.NewStyle().Foreground(c(lipgloss.Color("#008700"), lipgloss.Color("#5fd75f"))),
		away:      lipgloss.NewStyle().Foreground(c(lipgloss.Color("#af8700"), lipgloss.Color("#ffd75f"))),
		busy:      lipgloss.NewStyle().Foreground(c(lipgloss.Color("#af0000"), lipgloss.Color("#ff5f5f"))),
		offline:   lipgloss.NewStyle().Foreground(c(lipgloss.Color("#767676"), lipgloss.Color("#6c6c6c"))),
	}
}

// dot is a presence as a glyph, distinct without colour.
func (s styles) dot(state string) string {
	switch state {
	case "available":
		return s.available.Render(presenceGlyph(state))
	case "away":
		return s.away.Render(presenceGlyph(state))
	case "busy":
		return s.busy.Render(presenceGlyph(state))
	}
	return s.offline.Render(presenceGlyph(state))
}

// peerDot is dot, but a peer that is online for others and cannot be
// reached from here (a partition, a firewall) gets a mark of its own,
// in its state's colour: its state is true, and messages to it wait.
func (s styles) peerDot(p *api.Peer) string {
	if !unreachable(p) {
		return s.dot(p.State)
	}
	switch p.State {
	case "available":
		return s.available.Render(unreachableGlyph)
	case "away":
		return s.away.Render(unreachableGlyph)
	case "busy":
		return s.busy.Render(unreachableGlyph)
	}
	return s.offline.Render(unreachableGlyph)
}

// unreachableGlyph marks a peer online for others, not reachable from here.
const unreachableGlyph = "◌"

func unreachable(p *api.Peer) bool { return p.Online() && !p.Reachable }

// unreachableText says it in words, as lanchat peers does.
func unreachableText(seenBy int) string {
	others := "others"
	if seenBy == 1 {
		others = "other"
	}
	return fmt.Sprintf("unreachable from here, seen by %d %s", seenBy, others)
}

// fit truncates s (which may hold styles) to w cells and pads it to w.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if n := w - ansi.StringWidth(s); n > 0 {
		s += strings.Repeat(" ", n)
	}
	return s
}

// clean is termtext.Line: everything a peer wrote passes through it.
func clean(s string) string { return termtext.Line(s) }

// timeColumn is the width of "15:04 ".
const timeColumn = 6

// entryLines renders e for a conversation pane w cells wide, cached.
func (m *Model) entryLines(e *entry, w int) []string {
	if e.width == w && e.lines != nil {
		return e.lines
	}
	if e.kind == "file" {
		e.width, e.lines = w, m.fileLines(e, w)
		return e.lines
	}
	st := m.st
	stamp := st.dim.Render(e.t.In(m.loc).Format("15:04")) + " "
	avail := max(8, w-timeColumn)
	indent := strings.Repeat(" ", timeColumn)
	name := clean(e.fromName)
	if name == "" {
		name = short(e.fromID)
	}
	if e.fromWarn != "" {
		// Never a name that is not who it claims, shown bare.
		name += " [!" + clean(e.fromWarn) + "]"
	}
	var lines []string
	if e.kind != "text" {
		verb := "joined"
		if e.kind == "leave" {
			verb = "left"
		}
		what := fmt.Sprintf("* %s %s", name, verb)
		for i, l := range strings.Split(ansi.Wrap(what, avail, ""), "\n") {
			if i == 0 {
				lines = append(lines, stamp+st.dim.Render(l))
			} else {
				lines = append(lines, indent+st.dim.Render(l))
			}
		}
		e.width, e.lines = w, lines
		return lines
	}
	head := name + ": "
	if e.label != "" {
		head = "[" + clean(e.label) + "] " + head
	}
	nameStyle := st.name
	switch {
	case e.outgoing:
		nameStyle = st.self
	case e.mentions:
		nameStyle = st.mention
	}
	body := termtext.Split(e.text)
	for i, part := range body {
		text := part
		if i == 0 {
			text = head + part
		}
		wrapped := strings.Split(ansi.Wrap(text, avail, ""), "\n")
		for j, l := range wrapped {
			if i == 0 && j == 0 {
				if strings.HasPrefix(l, head) {
					l = nameStyle.Render(strings.TrimSuffix(head, " ")) + " " + l[len(head):]
				}
				lines = append(lines, stamp+l)
			} else {
				lines = append(lines, indent+l)
			}
		}
	}
	if mark := deliveryMark(e); mark != "" {
		last := lines[len(lines)-1]
		if ansi.StringWidth(last)+1+ansi.StringWidth(mark) <= w {
			lines[len(lines)-1] = last + " " + st.dim.Render(mark)
		} else {
			lines = append(lines, indent+st.dim.Render(mark))
		}
	}
	e.width, e.lines = w, lines
	return lines
}

// deliveryMark is how far a message this node sent got: a room's
// messages have no receipts, so only "queued" is shown for them.
func deliveryMark(e *entry) string {
	if !e.outgoing || (e.room != "" && e.state != "queued") {
		return ""
	}
	switch e.state {
	case "queued":
		return "… queued"
	case "sent":
		return "✓"
	case "delivered":
		return "✓✓"
	case "read":
		return "✓✓ read"
	}
	return ""
}

// dayLine separates the messages of two days.
func (m *Model) dayLine(e *entry, w int) string {
	label := " " + e.t.In(m.loc).Format("Mon 2 Jan 2006") + " "
	n := max(0, w-ansi.StringWidth(label))
	return m.st.day.Render(strings.Repeat("─", n/2) + label + strings.Repeat("─", n-n/2))
}

func sameDay(a, b *entry, m *Model) bool { return m.dayOf(a) == m.dayOf(b) }

// dayOf is e's local date as one number, computed once.
func (m *Model) dayOf(e *entry) int {
	if e.day == 0 {
		y, mo, d := e.t.In(m.loc).Date()
		e.day = y*10000 + int(mo)*100 + d
	}
	return e.day
}

// entryHeight is how many lines entry i of c takes, its day separator
// included.
func (m *Model) entryHeight(c *conv, i, w int) int {
	n := len(m.entryLines(c.entries[i], w))
	if i == 0 || !sameDay(c.entries[i-1], c.entries[i], m) {
		n++
	}
	return n
}

// headLine is the line above the oldest entry held, if there is one.
func (m *Model) headLine(c *conv) string {
	switch {
	case c.complete:
		return m.st.dim.Render("· start of the conversation ·")
	case c.loading || !c.loaded:
		return m.st.dim.Render("loading…")
	case len(c.entries) >= maxHeld:
		return m.st.dim.Render("older messages: /search, or lanchat history")
	}
	return ""
}

// window lays out the last lines of c that a pane w×h shows when
// scrolled scroll lines up, walking back from the newest entry only as
// far as that needs: the cost is the window's, not the conversation's.
// It returns the lines, the entries that have a line in them, and
// whether the walk reached the oldest entry held (top).
func (m *Model) window(c *conv, w, h, scroll int) (lines []string, shown []*entry, top bool) {
	// Skip the entries wholly below the window, counting their lines
	// only: scrolled far back, this is most of the walk.
	skip, i := scroll, len(c.entries)-1
	for i >= 0 {
		n := m.entryHeight(c, i, w)
		if n > skip {
			break
		}
		skip -= n
		i--
	}
	if i < 0 && scroll > 0 {
		// Past the top of what is held: show its top.
		total := scroll - skip
		if m.headLine(c) != "" {
			total++
		}
		if clamped := max(0, total-h); clamped < scroll {
			return m.window(c, w, h, clamped)
		}
	}
	scroll = skip
	need := scroll + h
	type block struct {
		e     *entry
		lines []string
	}
	var blocks []block // newest first
	count := 0
	for ; i >= 0 && count < need; i-- {
		e := c.entries[i]
		ls := m.entryLines(e, w)
		if i == 0 || !sameDay(c.entries[i-1], e, m) {
			ls = append([]string{m.dayLine(e, w)}, ls...)
		}
		blocks = append(blocks, block{e, ls})
		count += len(ls)
	}
	top = i < 0
	if top {
		if head := m.headLine(c); head != "" {
			blocks = append(blocks, block{nil, []string{head}})
			count++
		}
	}
	// Flatten oldest first, then cut the window out of the bottom.
	flat := make([]string, 0, count)
	owner := make([]*entry, 0, count)
	for b := len(blocks) - 1; b >= 0; b-- {
		for _, l := range blocks[b].lines {
			flat = append(flat, l)
			owner = append(owner, blocks[b].e)
		}
	}
	end := len(flat) - scroll
	if end < min(h, len(flat)) {
		end = min(h, len(flat))
	}
	start := max(0, end-h)
	lines = flat[start:end]
	var last *entry
	for _, e := range owner[start:end] {
		if e != nil && e != last {
			shown = append(shown, e)
			last = e
		}
	}
	return lines, shown, top
}

// linesHeld counts the lines of c from the newest back, up to limit, and
// whether that reached the oldest held.
func (m *Model) linesHeld(c *conv, w, limit int) (n int, top bool) {
	i := len(c.entries) - 1
	for ; i >= 0 && n < limit; i-- {
		n += m.entryHeight(c, i, w)
	}
	if i < 0 && m.headLine(c) != "" {
		n++
	}
	return n, i < 0
}

func short(id string) string {
	if len(id) > 7 {
		return id[:7]
	}
	return id
}
