package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var historyCmd = command{
	name:    "history",
	args:    "[name|id|'#room']",
	summary: "show stored messages, newest last, with their delivery state",
	example: "lanchat history bob --limit 20\nlanchat history '#general'   # a room: quote it, '#' starts a shell comment\nlanchat history --search \"build\" --json\nlanchat history --since 2026-11-22T09:00:00Z",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		limit := fs.Int("limit", api.DefaultHistoryLimit, "show the newest N messages")
		since := fs.String("since", "", "only messages after this time (RFC 3339, or a duration such as 2h)")
		search := fs.String("search", "", "full-text search across all conversations")
		return func(e *env, args []string) int { return e.history(args, *limit, *since, *search) }
	},
}

// historyOutput is one element of `lanchat history --json`. Room, Kind
// and Mentions are set for a room's entries only.
type historyOutput struct {
	ID       string      `json:"id"`
	From     api.PeerRef `json:"from"`
	To       api.PeerRef `json:"to"`
	Text     string      `json:"text"`
	Time     time.Time   `json:"time"`
	Outgoing bool        `json:"outgoing"`
	State    string      `json:"state"`
	Room     string      `json:"room,omitempty"`
	Kind     string      `json:"kind,omitempty"` // text, join, leave, retention (text: the seconds)
	Mentions []string    `json:"mentions,omitempty"`
	// See api.HistoryEntry: the author's clock when far ahead, and a late
	// arrival.
	ClaimedTime *time.Time `json:"claimed_time,omitempty"`
	Arrived     *time.Time `json:"arrived,omitempty"`
}

func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 (2026-11-22T09:00:00Z), a date, or a duration (2h)", s)
}

func (e *env) history(args []string, limit int, sinceArg, search string) int {
	if len(args) > 1 {
		return e.usageErr("history", "at most one conversation (a name, an id or a quoted '#room')")
	}
	if limit <= 0 || limit > api.MaxHistoryLimit {
		return e.usageErr("history", "--limit must be 1 to %d", api.MaxHistoryLimit)
	}
	since, err := parseSince(sinceArg)
	if err != nil {
		return e.usageErr("history", "%v", err)
	}
	// Messages shown to a person are read; a script reading JSON is not a
	// person reading them.
	q := api.HistoryQuery{Limit: limit, Since: since, Search: search, MarkRead: !e.g.json}
	if len(args) == 1 {
		q.Peer = args[0]
		if isRoom(q.Peer) {
			if _, err := roomArg(q.Peer, false); err != nil {
				return e.usageErr("history", "%v", err)
			}
		}
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	ctx := context.Background()
	list, err := a.History(ctx, q)
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		out := make([]historyOutput, 0, len(list))
		for _, h := range list {
			out = append(out, historyOutput{ID: h.ID, From: h.From, To: h.To, Text: h.Text, Time: h.Time,
				Outgoing: h.Outgoing, State: h.State, Room: h.Room, Kind: h.Kind, Mentions: h.Mentions,
				ClaimedTime: h.ClaimedTime, Arrived: h.Arrived})
		}
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no messages")
		return exitOK
	}
	// Mentions are ids: name them after the people these entries know,
	// and "you" after this data directory's id.
	names := newNameBook()
	for _, h := range list {
		names.learn(h.From)
		names.learn(h.To)
	}
	if slices.ContainsFunc(list, func(h api.HistoryEntry) bool { return len(h.Mentions) > 0 }) {
		if self, err := a.Self(ctx); err == nil {
			names.self = self.ID
		}
	}
	for _, h := range list {
		t := h.Time.Local().Format("2006-01-02 15:04:05")
		switch {
		case h.Room != "" && h.Kind == "retention":
			secs, _ := strconv.ParseInt(h.Text, 10, 64)
			fmt.Fprintf(e.stdout, "%s * %s\n", t, describeSetting(refName(h.From), h.Room, secs))
		case h.Room != "" && (h.Kind == "join" || h.Kind == "leave"):
			fmt.Fprintf(e.stdout, "%s * %s\n", t, describeMembership(refName(h.From), h.Kind == "join", h.Room))
		case h.Room != "":
			line := fmt.Sprintf("%s [%s] %s: %s%s", t, cleanLine(h.Room), refName(h.From), cleanLines(h.Text), names.mentions(h.Mentions))
			if h.Outgoing {
				line += "  [" + h.State + "]"
			}
			fmt.Fprintln(e.stdout, line)
		case h.Outgoing:
			fmt.Fprintf(e.stdout, "%s → %s: %s  [%s]\n", t, refName(h.To), cleanLines(h.Text), h.State)
		default:
			fmt.Fprintf(e.stdout, "%s %s: %s%s\n", t, refName(h.From), cleanLines(h.Text), timeNote(h.ClaimedTime, h.Arrived))
		}
	}
	return exitOK
}

// timeNote tells a person when a message's time is not simply when it was
// written: its author's clock was far ahead (it is shown where it arrived),
// or it arrived long after its time.
func timeNote(claimed, arrived *time.Time) string {
	const layout = "2006-01-02 15:04:05"
	switch {
	case claimed != nil:
		return "  (their clock said " + claimed.Local().Format(layout) + ")"
	case arrived != nil:
		return "  (arrived " + arrived.Local().Format(layout) + ")"
	}
	return ""
}

// describeSetting is "bob set #ops to keep 30 days".
func describeSetting(who, room string, secs int64) string {
	return fmt.Sprintf("%s set %s to keep %s", who, cleanLine(room), describeRetention(secs))
}

// describeMembership is "bob joined #general" or "bob left #general".
func describeMembership(who string, joined bool, room string) string {
	verb := "left"
	if joined {
		verb = "joined"
	}
	return fmt.Sprintf("%s %s %s", who, verb, cleanLine(room))
}

// nameBook names peer ids for a person: mentions carry ids only.
type nameBook struct {
	self  string            // this node's id: "you"
	names map[string]string // id → name
}

func newNameBook() *nameBook { return &nameBook{names: map[string]string{}} }

func (b *nameBook) learn(p api.PeerRef) {
	if p.ID != "" && p.Name != "" && !isRoom(p.ID) {
		b.names[p.ID] = p.Name
	}
}

// mentions is "  (mentions you, bob)" for a message naming those ids, ""
// for none. You come first: that is what a person looks for.
func (b *nameBook) mentions(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	var you bool
	var others []string
	for _, id := range ids {
		switch {
		case id == b.self && b.self != "":
			you = true
		case b.names[id] != "":
			others = append(others, cleanLine(b.names[id]))
		default:
			others = append(others, cleanLine(short(id)))
		}
	}
	if you {
		others = append([]string{"you"}, others...)
	}
	return "  (mentions " + strings.Join(others, ", ") + ")"
}
