package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"lanchat/node/api"
)

// Files in the UI: an offer or transfer is an entry in its peer's
// conversation (not stored in the history: the node's transfer list is
// where it lives), drawn from the transfer's latest state each time it
// changes, so one entry shows the offer, then its progress, then how it
// ended.

// xfer is what the UI holds of one transfer.
type xfer struct {
	t     api.Transfer
	first time.Time // when the UI first saw it: where its entry sits in time
	entry *entry    // in the peer's conversation; made again after a reset

	// The rate, from successive changes: bytes a second, smoothed.
	rate     float64
	lastDone int64
	lastAt   time.Time
}

// maxTransfers bounds the transfers held; past it the oldest finished go
// (the node bounds the offers a peer can make; this bounds the rest).
const maxTransfers = 500

// maxShownNames bounds the names an offer's line lists, and maxNameRunes
// each name's length there: a hostile offer may name a thousand files.
const (
	maxShownNames = 3
	maxNameRunes  = 60
)

type (
	transfersMsg struct {
		ts  []api.Transfer
		err error
	}
	offeredMsg struct {
		t   api.Transfer
		err error
	}
	settledMsg struct {
		accept bool
		t      api.Transfer
		err    error
	}
)

var errNoFiles = errors.New("this node does not move files")

// fetchTransfers reads the node's transfer list, for offers that came
// while the UI was closed or behind.
func (m *Model) fetchTransfers() tea.Cmd {
	if m.files == nil {
		return nil
	}
	f := m.files
	return m.call(func(ctx context.Context) tea.Msg {
		ts, err := f.Transfers(ctx)
		return transfersMsg{ts, err}
	})
}

func (m *Model) gotTransfers(msg transfersMsg) {
	if msg.err != nil {
		m.notice = "could not list transfers: " + clean(msg.err.Error())
		return
	}
	for _, t := range msg.ts {
		m.transfer(t, time.Time{})
	}
}

// transfer takes a transfer's new state, making its entry if it is new;
// it reports whether it was new.
func (m *Model) transfer(t api.Transfer, now time.Time) (*xfer, bool) {
	if t.ID == "" || t.Peer.ID == "" {
		return nil, false
	}
	x := m.transfers[t.ID]
	if x != nil && x.t.Peer.ID != t.Peer.ID {
		return nil, false // an id is one peer's: another's claim to it is not shown over it
	}
	isNew := x == nil
	if isNew {
		first := t.Updated
		if first.IsZero() {
			first = now
		}
		if first.IsZero() {
			first = m.now()
		}
		x = &xfer{first: first, lastDone: t.Done, lastAt: t.Updated}
		m.transfers[t.ID] = x
		m.pruneTransfers()
	} else {
		x.progress(t)
	}
	x.t = t
	m.placeTransfer(x)
	return x, isNew
}

// progress updates the rate from the bytes moved since the last change,
// timed by the node's clock (Updated).
func (x *xfer) progress(t api.Transfer) {
	if t.State != api.TransferActive {
		x.rate, x.lastDone, x.lastAt = 0, t.Done, t.Updated
		return
	}
	dt := t.Updated.Sub(x.lastAt).Seconds()
	if dt <= 0 || x.lastAt.IsZero() || t.Done < x.lastDone {
		x.lastDone, x.lastAt = t.Done, t.Updated
		return
	}
	r := float64(t.Done-x.lastDone) / dt
	if x.rate == 0 {
		x.rate = r
	} else {
		x.rate = 0.7*x.rate + 0.3*r
	}
	x.lastDone, x.lastAt = t.Done, t.Updated
}

// placeTransfer puts x's entry in its peer's conversation, or has it
// drawn again there.
func (m *Model) placeTransfer(x *xfer) {
	id := x.t.Peer.ID
	if m.peers[id] == nil {
		m.peers[id] = &api.Peer{ID: id, Name: x.t.Peer.Name, State: "offline"}
	}
	c := m.conv(id)
	if x.t.Direction == "in" {
		// Which offer Alt-Y answers may have moved: the peer's offers
		// are drawn again, each saying how to answer it.
		for _, o := range m.transfers {
			if o.entry != nil && o.t.Peer.ID == id {
				o.entry.lines = nil
			}
		}
	}
	if x.entry != nil && c.ids[x.entry.id] {
		x.entry.lines = nil
		return
	}
	x.entry = &entry{id: "file:" + x.t.ID, kind: "file", fromID: id, t: x.first, outgoing: x.t.Direction == "out", xfer: x}
	c.appendEntry(x.entry)
}

// placeAllTransfers puts every transfer back after the conversations
// were reset (a snapshot).
func (m *Model) placeAllTransfers() {
	for _, x := range m.transfers {
		x.entry = nil
		m.placeTransfer(x)
	}
}

func (m *Model) pruneTransfers() {
	if len(m.transfers) <= maxTransfers {
		return
	}
	var done []*xfer
	for _, x := range m.transfers {
		if finished(x.t.State) {
			done = append(done, x)
		}
	}
	slices.SortFunc(done, func(a, b *xfer) int { return a.first.Compare(b.first) })
	for _, x := range done[:min(len(done), len(m.transfers)-maxTransfers)] {
		delete(m.transfers, x.t.ID)
	}
}

func finished(state string) bool {
	return state == api.TransferDone || state == api.TransferDeclined || state == api.TransferFailed
}

// fileOffer is a peer's new offer: shown in its conversation, and, when
// that is not what is on screen, counted unread with the bell rung, as a
// direct message is.
func (m *Model) fileOffer(v api.FileOffer) tea.Cmd {
	t := api.Transfer{ID: v.ID, Direction: "in", Peer: v.From, Names: v.Names, Files: v.Files, Total: v.Total, State: api.TransferOffered}
	if old := m.transfers[v.ID]; old != nil {
		t = old.t // the transfer event came first and says more
	}
	x, isNew := m.transfer(t, m.now())
	if x == nil || !isNew {
		return nil
	}
	key := v.From.ID
	c := m.conv(key)
	if key == m.cur && m.mode == modeChat && c.scroll == 0 {
		return nil
	}
	c.unread++
	body := "offers " + describeNames(v.Names) + " (" + countText(v.Files) + ", " + bytesText(v.Total) + ")"
	return tea.Batch(tea.Raw("\a"), m.notifyText(clean(v.From.Name), body))
}

// transferChange is a transfer's progress or end.
func (m *Model) transferChange(v api.TransferChange) tea.Cmd {
	x, isNew := m.transfer(v.Transfer, m.now())
	if x == nil || !isNew || x.t.Direction != "in" || x.t.State == api.TransferOffered {
		return nil
	}
	// Files coming in that nobody was asked about (an auto-accept): count
	// them where they are not seen, without the bell.
	if c := m.conv(x.t.Peer.ID); x.t.Peer.ID != m.cur || c.scroll > 0 {
		c.unread++
	}
	return nil
}

// ---- commands ----

// offerFiles is /file: the paths, relative to where the UI runs, offered
// to the open conversation's person.
func (m *Model) offerFiles(rest string) (tea.Cmd, bool) {
	if m.files == nil {
		m.notice = errNoFiles.Error()
		return nil, true
	}
	args, err := splitArgs(rest)
	if err != nil || len(args) == 0 {
		m.notice = "usage: /file PATH… (Tab completes; quote or \\-escape spaces)"
		return nil, false
	}
	if m.cur == "" || strings.HasPrefix(m.cur, "#") {
		m.notice = "files go to one person: open their conversation (Ctrl-K) and /file there"
		return nil, false
	}
	if len(args) > api.MaxOfferPaths {
		m.notice = fmt.Sprintf("at most %d paths in one offer", api.MaxOfferPaths)
		return nil, false
	}
	paths := make([]string, 0, len(args))
	for _, a := range args {
		p, err := absPath(a)
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			m.notice = "not offered: " + clean(err.Error())
			return nil, false
		}
		paths = append(paths, p)
	}
	to, f := m.cur, m.files
	return m.call(func(ctx context.Context) tea.Msg {
		t, err := f.OfferFiles(ctx, api.FileOfferRequest{To: to, Paths: paths})
		return offeredMsg{t, err}
	}), true
}

func (m *Model) gotOffered(msg offeredMsg) {
	if msg.err != nil {
		m.notice = "not offered: " + clean(msg.err.Error())
		return
	}
	m.transfer(msg.t, m.now())
	m.notice = "offered " + describeNames(msg.t.Names) + " to " + m.title(msg.t.Peer.ID)
	if n := len(msg.t.Skipped); n > 0 {
		m.notice += fmt.Sprintf("; not sent: %d links or special files (%s)", n, describeNames(msg.t.Skipped))
	}
}

// settle is /accept and /decline: the offer named by id (a prefix will
// do), or the newest one waiting in the open conversation.
func (m *Model) settle(accept bool, id string) (tea.Cmd, bool) {
	if m.files == nil {
		m.notice = errNoFiles.Error()
		return nil, true
	}
	verb := "/decline"
	if accept {
		verb = "/accept"
	}
	var x *xfer
	if id != "" {
		var found []*xfer
		for tid, t := range m.transfers {
			if strings.HasPrefix(tid, id) && t.t.Direction == "in" {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			m.notice = "no offer " + clean(id) + " (lanchat transfers lists them)"
			return nil, false
		case 1:
			x = found[0]
		default:
			m.notice = fmt.Sprintf("%d offers start with %s: give more of the id", len(found), clean(id))
			return nil, false
		}
	} else {
		x = m.newestOffer(m.cur)
		if x == nil {
			if other := m.newestOffer(""); other != nil {
				m.notice = "no offer waiting here; " + m.title(other.t.Peer.ID) + " offers " + describeNames(other.t.Names) +
					": " + verb + " " + other.t.ID[:min(8, len(other.t.ID))]
			} else {
				m.notice = "no offer is waiting"
			}
			return nil, false
		}
	}
	req, f := api.TransferRequest{ID: x.t.ID}, m.files
	return m.call(func(ctx context.Context) tea.Msg {
		var t api.Transfer
		var err error
		if accept {
			t, err = f.AcceptTransfer(ctx, req)
		} else {
			t, err = f.DeclineTransfer(ctx, req)
		}
		return settledMsg{accept, t, err}
	}), true
}

// newestOffer is the newest incoming offer waiting for a decision in
// conversation key ("" for any).
func (m *Model) newestOffer(key string) *xfer {
	var best *xfer
	for _, x := range m.transfers {
		if x.t.Direction != "in" || x.t.State != api.TransferOffered || (key != "" && x.t.Peer.ID != key) {
			continue
		}
		if best == nil || x.first.After(best.first) || (x.first.Equal(best.first) && x.t.ID > best.t.ID) {
			best = x
		}
	}
	return best
}

func (m *Model) gotSettled(msg settledMsg) {
	if msg.err != nil {
		m.notice = "not answered: " + clean(msg.err.Error())
		return
	}
	m.transfer(msg.t, m.now())
	if msg.accept {
		m.notice = "accepted " + describeNames(msg.t.Names) + " from " + m.title(msg.t.Peer.ID)
	} else {
		m.notice = "declined " + describeNames(msg.t.Names) + " from " + m.title(msg.t.Peer.ID)
	}
}

// ---- paths ----

// splitArgs splits a line at spaces, as a shell would for quotes ('…',
// "…") and backslash escapes, so a path with a space can be given.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inArg = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\n' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("an unfinished quote or escape")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// absPath is p made absolute against the UI's working directory, with
// a leading ~ for the home directory: the node reads paths as given.
func absPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		p = filepath.Join(home, p[1:])
	}
	return filepath.Abs(p)
}

// maxCompleteEntries bounds what path completion reads of one folder.
const maxCompleteEntries = 5000

// pathCompletions are the entries of word's folder that start with its
// last part, escaped as splitArgs reads them; a folder ends in "/" (and
// no space, so Tab can go on into it).
func pathCompletions(word string) []string {
	raw, err := splitArgs(word)
	if err != nil && strings.HasSuffix(word, "\\") {
		raw, err = splitArgs(strings.TrimSuffix(word, "\\"))
	}
	typed := ""
	if err == nil && len(raw) == 1 {
		typed = raw[0]
	} else if err != nil {
		return nil
	}
	dir, prefix := filepath.Split(typed)
	look := dir
	if look == "" {
		look = "."
	}
	if look == "~/" || strings.HasPrefix(look, "~/") {
		if abs, err := absPath(look); err == nil {
			look = abs
		}
	}
	d, err := os.Open(look)
	if err != nil {
		return nil
	}
	defer d.Close()
	ents, _ := d.ReadDir(maxCompleteEntries)
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || clean(name) != name {
			continue // a name that cannot be typed is not offered
		}
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(prefix, ".") {
			continue
		}
		full := escapePath(dir + name)
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(look, name)); err == nil && fi.IsDir() {
				isDir = true
			}
		}
		if isDir {
			full += "/"
		} else {
			full += " "
		}
		out = append(out, full)
	}
	return out
}

func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(" \\'\"", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lastArgStart is where the last argument of line begins, a backslash-
// escaped space not ending it.
func lastArgStart(line string) int {
	start := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case ' ', '\n':
			start = i + 1
		}
	}
	return start
}

// ---- rendering ----

// fileLines draws a transfer's entry: what is offered, then where it is.
func (m *Model) fileLines(e *entry, w int) []string {
	st := m.st
	x := e.xfer
	t := x.t
	stamp := st.dim.Render(e.t.In(m.loc).Format("15:04")) + " "
	indent := strings.Repeat(" ", timeColumn)
	avail := max(8, w-timeColumn)
	peer := m.title(t.Peer.ID)
	if t.Peer.Warning != "" {
		peer += " [!" + clean(t.Peer.Warning) + "]"
	}
	what := describeNames(t.Names) + " (" + countText(t.Files) + ", " + bytesText(t.Total) + ")"
	var head string
	if t.Direction == "in" {
		head = "⇩ " + peer + " offers " + what
	} else {
		head = "⇧ you offer " + what + " to " + peer
	}
	var lines []string
	for i, l := range strings.Split(wrap(head, avail), "\n") {
		if i == 0 {
			lines = append(lines, stamp+st.notice.Render(l))
		} else {
			lines = append(lines, indent+st.notice.Render(l))
		}
	}
	short := t.ID[:min(8, len(t.ID))]
	var state string
	switch t.State {
	case api.TransferOffered:
		state = "/accept or /decline (" + short + ")"
		if t.Direction == "in" && m.newestOffer(t.Peer.ID) == x {
			// The one the keys answer; an older offer needs its id.
			state = "Alt-Y accept · Alt-N decline (" + short + ")"
		}
	case api.TransferWaiting:
		if t.Direction == "out" {
			state = "… waiting for " + peer + " (away, deciding, or cut off)"
		} else {
			state = "… waiting for " + peer + " to go on"
		}
		if t.Done > 0 {
			state += fmt.Sprintf(" · %s of %s", bytesText(t.Done), bytesText(t.Total))
		}
	case api.TransferActive:
		state = progressText(x, avail)
	case api.TransferDone:
		if t.Direction == "in" {
			state = fmt.Sprintf("✓ received and verified: %s, %s", countText(t.Files), bytesText(t.Total))
		} else {
			state = fmt.Sprintf("✓ %s verified everything: %s, %s", peer, countText(t.Files), bytesText(t.Total))
		}
	case api.TransferDeclined:
		if t.Direction == "in" {
			state = "✗ declined"
		} else {
			state = "✗ declined by " + peer
		}
	case api.TransferFailed:
		state = "✗ failed"
		if t.Error != "" {
			state += ": " + clean(t.Error)
		}
	default:
		state = clean(t.State)
	}
	for _, l := range strings.Split(wrap(state, avail), "\n") {
		lines = append(lines, indent+st.dim.Render(l))
	}
	return lines
}

func wrap(s string, w int) string {
	return strings.TrimRight(ansi.Wrap(s, w, ""), "\n")
}

// progressText is an active transfer's line: a bar, the percentage, the
// bytes, the rate and the file being moved.
func progressText(x *xfer, w int) string {
	t := x.t
	pct := 0
	if t.Total > 0 {
		pct = int(min(100, t.Done*100/t.Total))
	} else {
		pct = 100
	}
	const barW = 10
	filled := pct * barW / 100
	s := "[" + strings.Repeat("█", filled) + strings.Repeat("░", barW-filled) + "]" +
		fmt.Sprintf(" %3d%% · %s of %s", pct, bytesText(t.Done), bytesText(t.Total))
	if x.rate > 0 {
		s += " · " + bytesText(int64(x.rate)) + "/s"
	}
	if t.Files > 1 {
		s += fmt.Sprintf(" · %d/%d files", t.FilesDone, t.Files)
	}
	if t.Current != "" && t.Files > 1 {
		s += " · " + shortName(t.Current)
	}
	return s
}

func describeNames(ns []string) string {
	if len(ns) == 0 {
		return "nothing"
	}
	shown := make([]string, 0, maxShownNames)
	for _, n := range ns[:min(len(ns), maxShownNames)] {
		shown = append(shown, shortName(n))
	}
	s := strings.Join(shown, ", ")
	if more := len(ns) - len(shown); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// shortName is a peer-given name made safe and cut to a readable length.
func shortName(n string) string {
	r := []rune(clean(n))
	if len(r) > maxNameRunes {
		return string(r[:maxNameRunes-1]) + "…"
	}
	return string(r)
}

func countText(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for q := n / unit; q >= unit; q /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// transferCounts are the transfers moving data and the offers waiting
// for an answer, for the status bar.
func (m *Model) transferCounts() (active, offered int) {
	for _, x := range m.transfers {
		switch {
		case x.t.State == api.TransferActive:
			active++
		case x.t.State == api.TransferOffered && x.t.Direction == "in":
			offered++
		}
	}
	return active, offered
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
