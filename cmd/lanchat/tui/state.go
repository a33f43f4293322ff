package tui

import (
	"slices"
	"strings"
	"time"

	"lanchat/node/api"
)

// A conversation is a room or the direct conversation with one person.
// Only a window of its history is held: the newest page when it is
// opened, and older pages as the reader scrolls up (GET /v1/history with
// before), up to maxHeld entries.
type conv struct {
	key    string // "#room" or the peer's id
	room   bool
	joined bool // a room this node is in (a person's conversation: always)

	entries  []*entry // held, oldest first
	ids      map[string]bool
	loaded   bool // the newest page has come
	loading  bool // a page is being fetched
	complete bool // nothing older than entries[0] is stored

	unread   int
	mention  bool      // an unread message names this node
	activity time.Time // the newest message's time, for Alt-A and the switcher

	scroll int // lines between the bottom of the view and the newest line

	// room counts, as the node last said
	online, total int
}

// entry is one message or room notice, with its rendering cached for
// the width it was rendered at.
type entry struct {
	id       string
	fromID   string
	fromName string
	fromWarn string // the node's warning about fromName on fromID (trust)
	text     string
	t        time.Time
	outgoing bool
	state    string // queued, sent, delivered, read
	kind     string // text, join, leave, file
	room     string
	mentions bool // names this node
	label    string
	xfer     *xfer // a file entry's transfer

	width int
	lines []string
	day   int // local date as yyyymmdd, 0 until computed
}

// maxHeld bounds the entries held for one conversation: scrolling back
// further says so rather than growing without end.
const maxHeld = 20_000

// pageSize is how many messages one history request asks for.
const pageSize = 200

func entryOf(h api.HistoryEntry, self string) *entry {
	kind := h.Kind
	if kind == "" {
		kind = "text"
	}
	return &entry{
		id: h.ID, fromID: h.From.ID, fromName: h.From.Name, fromWarn: h.From.Warning, text: h.Text, t: h.Time,
		outgoing: h.Outgoing, state: h.State, kind: kind, room: h.Room,
		mentions: slices.Contains(h.Mentions, self),
	}
}

func entryOfMessage(m api.Message, self string) *entry {
	state := ""
	if !m.Outgoing {
		state = "delivered"
	}
	return &entry{
		id: m.ID, fromID: m.From.ID, fromName: m.From.Name, fromWarn: m.From.Warning, text: m.Text, t: m.Time,
		outgoing: m.Outgoing, state: state, kind: "text", room: m.Room,
		mentions: slices.Contains(m.Mentions, self),
	}
}

// appendEntry adds e at its place in time (events arrive in order, but an
// outgoing message's event may follow a newer incoming one); an id held
// already is not added twice.
func (c *conv) appendEntry(e *entry) bool {
	if e.id != "" {
		if c.ids[e.id] {
			return false
		}
		c.ids[e.id] = true
	}
	i := len(c.entries)
	for i > 0 && c.entries[i-1].t.After(e.t) {
		i--
	}
	c.entries = slices.Insert(c.entries, i, e)
	if e.t.After(c.activity) {
		c.activity = e.t
	}
	if len(c.entries) > maxHeld {
		drop := len(c.entries) - maxHeld
		for _, d := range c.entries[:drop] {
			delete(c.ids, d.id)
		}
		c.entries = slices.Delete(c.entries, 0, drop)
		c.complete = false
	}
	return true
}

// prepend adds an older page in front of what is held.
func (c *conv) prepend(page []*entry) {
	var add []*entry
	for _, e := range page {
		if e.id != "" && c.ids[e.id] {
			continue
		}
		if e.id != "" {
			c.ids[e.id] = true
		}
		add = append(add, e)
	}
	if len(c.entries)+len(add) > maxHeld {
		n := max(0, maxHeld-len(c.entries))
		for _, d := range add[:len(add)-n] {
			delete(c.ids, d.id)
		}
		add = add[len(add)-n:]
	}
	c.entries = append(add, c.entries...)
	for _, e := range add {
		if e.t.After(c.activity) {
			c.activity = e.t
		}
	}
}

// trim keeps only the newest keep entries, when the reader is back at
// the bottom after scrolling far up.
func (c *conv) trim(keep int) {
	if len(c.entries) <= keep {
		return
	}
	drop := len(c.entries) - keep
	for _, d := range c.entries[:drop] {
		delete(c.ids, d.id)
	}
	c.entries = slices.Delete(c.entries, 0, drop)
	c.complete = false
}

// reset forgets what is held (a resync: the node's state may differ).
func (c *conv) reset() {
	c.entries, c.ids = nil, map[string]bool{}
	c.loaded, c.loading, c.complete, c.scroll = false, false, false, 0
}

func newConv(key string) *conv {
	return &conv{key: key, room: strings.HasPrefix(key, "#"), joined: true, ids: map[string]bool{}}
}
