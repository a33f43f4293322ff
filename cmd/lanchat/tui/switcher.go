package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
)

// switcher is the Ctrl-K quick switcher: type part of a name, Enter
// opens the best match; rooms not joined are offered too (Enter joins).
type switcher struct {
	query string
	pick  int
}

type candidate struct {
	key, label string
	score      int
	joined     bool
}

// fuzzy scores how well query matches s as a subsequence, ignoring case:
// -1 for no match; higher for a match at the start, at word starts and
// in runs.
func fuzzy(query, s string) int {
	q, t := []rune(strings.ToLower(query)), []rune(strings.ToLower(s))
	if len(q) == 0 {
		return 0
	}
	score, qi, run := 0, 0, 0
	for ti := 0; ti < len(t) && qi < len(q); ti++ {
		if t[ti] != q[qi] {
			run = 0
			continue
		}
		score++
		if ti == 0 {
			score += 8
		} else if strings.ContainsRune(" #@._-", t[ti-1]) {
			score += 4
		}
		run++
		score += 2 * (run - 1)
		qi++
	}
	if qi < len(q) {
		return -1
	}
	return score*8 - len(t) // among equals, the shorter name
}

func (m *Model) candidates() []candidate {
	var out []candidate
	seen := map[string]bool{}
	for _, k := range m.order() {
		seen[k] = true
		label := m.title(k)
		if sc := fuzzy(m.sw.query, label); sc >= 0 {
			out = append(out, candidate{key: k, label: label, score: sc, joined: true})
		}
	}
	for name := range m.rooms {
		if seen[name] {
			continue
		}
		if sc := fuzzy(m.sw.query, name); sc >= 0 {
			out = append(out, candidate{key: name, label: name, score: sc})
		}
	}
	slices.SortStableFunc(out, func(a, b candidate) int {
		if m.sw.query == "" {
			return cmp.Compare(m.convs[b.key].activityUnix(), m.convs[a.key].activityUnix())
		}
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.label, b.label))
	})
	return out
}

func (c *conv) activityUnix() int64 {
	if c == nil {
		return 0
	}
	return c.activity.UnixNano()
}

func (m *Model) switcherKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc", "ctrl+k", "ctrl+c":
		m.mode = modeChat
		return m.afterMove()
	case "enter":
		cs := m.candidates()
		m.mode = modeChat
		if len(cs) == 0 {
			return nil
		}
		c := cs[min(m.sw.pick, len(cs)-1)]
		if !c.joined {
			m.input.SetValue("/join " + c.key)
			return m.submit()
		}
		return m.open(c.key)
	case "up", "ctrl+p":
		m.sw.pick = max(0, m.sw.pick-1)
		return nil
	case "down", "ctrl+n", "tab":
		m.sw.pick++
		if n := len(m.candidates()); m.sw.pick >= n {
			m.sw.pick = max(0, n-1)
		}
		return nil
	case "backspace":
		if m.sw.query != "" {
			_, n := utf8.DecodeLastRuneInString(m.sw.query)
			m.sw.query = m.sw.query[:len(m.sw.query)-n]
			m.sw.pick = 0
		}
		return nil
	}
	if t := k.Text; t != "" && len(m.sw.query) < 64 {
		m.sw.query += safeInput(t)
		m.sw.pick = 0
	}
	return nil
}

func (m *Model) switcherLines(w, h int) []string {
	cs := m.candidates()
	lines := []string{m.st.dim.Render(" ↑↓ choose · Enter open · Esc cancel")}
	if len(cs) == 0 {
		return append(lines, m.st.dim.Render("  no match"))
	}
	off := 0
	if m.sw.pick >= h-1 {
		off = m.sw.pick - (h - 2)
	}
	for i := off; i < len(cs) && len(lines) < h; i++ {
		c := cs[i]
		label := c.label
		if !c.joined {
			label += "  (join)"
		} else if cv := m.convs[c.key]; cv != nil && cv.unread > 0 {
			label += fmt.Sprintf("  %d unread", cv.unread)
		}
		if i == m.sw.pick {
			lines = append(lines, m.st.selected.Render(fit(" ▸ "+label, w)))
		} else {
			lines = append(lines, "   "+label)
		}
	}
	return lines
}

// helpText lists every key and command.
var helpText = [][2]string{
	{"Enter, Alt-Enter", "send the line; a new line in the message"},
	{"Up / Down", "lines sent before"},
	{"Tab", "complete a name, #room or /command (again: next)"},
	{"Ctrl-K", "quick switcher: type part of a name"},
	{"Alt-1 … Alt-9", "the conversation with that number"},
	{"Ctrl-N / Ctrl-P", "next / previous conversation"},
	{"Alt-A", "next conversation with unread messages"},
	{"Alt-Y / Alt-N", "accept / decline the newest offer"},
	{"PgUp / PgDn", "scroll back / forward (Ctrl-End: newest)"},
	{"F2 or Alt-S", "hide or show the sidebar"},
	{"? or F1", "this help (? on an empty line)"},
	{"Esc", "clear the status line; close a pane"},
	{"Ctrl-C, /quit", "clear the line; on an empty line, quit"},
	{"", ""},
	{"/msg NAME [text]", "talk to someone"},
	{"/join #room", "join (or start) a room"},
	{"/leave, /who [#room]", "leave a room; list its members (this one)"},
	{"/status STATE [text]", "available, away or busy (/away: again is back)"},
	{"/search WORDS", "search every conversation"},
	{"/file PATH…", "offer files and folders here (Tab: paths)"},
	{"/accept, /decline [id]", "the newest offer here (or id); //x sends /x"},
}

func helpLines(st styles, w int) []string {
	var lines []string
	kw := 23
	for _, h := range helpText {
		if h[0] == "" {
			lines = append(lines, "")
			continue
		}
		lines = append(lines, fit(" "+st.header.Render(fit(h[0], kw))+" "+h[1], w))
	}
	return lines
}
