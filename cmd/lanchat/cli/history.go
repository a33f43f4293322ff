package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var historyCmd = command{
	name:    "history",
	args:    "[name|id]",
	summary: "show stored messages, newest last, with their delivery state",
	example: "lanchat history bob --limit 20\nlanchat history --search \"build\" --json\nlanchat history --since 2026-11-22T09:00:00Z",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		limit := fs.Int("limit", api.DefaultHistoryLimit, "show the newest N messages")
		since := fs.String("since", "", "only messages after this time (RFC 3339, or a duration such as 2h)")
		search := fs.String("search", "", "full-text search across all conversations")
		return func(e *env, args []string) int { return e.history(args, *limit, *since, *search) }
	},
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
		return e.usageErr("history", "at most one conversation (a name or id)")
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
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	list, err := a.History(context.Background(), q)
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		if list == nil {
			list = []api.HistoryEntry{}
		}
		writeJSON(e.stdout, list)
		return exitOK
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no messages")
		return exitOK
	}
	for _, h := range list {
		t := h.Time.Local().Format("2006-01-02 15:04:05")
		switch {
		case h.Kind == "join" || h.Kind == "leave":
			fmt.Fprintf(e.stdout, "%s * %s: %s\n", t, sender(h.Room, h.From.Name), map[string]string{"join": "joined", "leave": "left"}[h.Kind])
		case h.Outgoing:
			fmt.Fprintf(e.stdout, "%s → %s: %s  [%s]\n", t, cleanLine(h.To.Name), cleanLines(h.Text), h.State)
		default:
			fmt.Fprintf(e.stdout, "%s %s: %s\n", t, sender(h.Room, h.From.Name), cleanLines(h.Text))
		}
	}
	return exitOK
}

// sender names who wrote a received message: for a room message, the
// room first. Every node is in #general, so anyone on the LAN (a fresh
// key named "bob") writes to everyone there: shown as "bob: …" alone,
// that passed for a direct message from bob.
func sender(room, name string) string {
	if room == "" {
		return cleanLine(name)
	}
	return cleanLine(room) + " " + cleanLine(name)
}
