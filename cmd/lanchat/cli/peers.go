package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
)

var peersCmd = command{
	name:    "peers",
	summary: "list the people on the network and their presence",
	example: "lanchat peers\nlanchat peers --json | jq -r '.[] | select(.state==\"available\") | .name'\nlanchat peers --room general   # a room's members ('#general' quoted works too)",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		wait := fs.Duration("wait", 3*time.Second, "without a running node: how long to look for peers")
		room := fs.String("room", "", "list this room's members instead (general or '#general')")
		return func(e *env, args []string) int {
			if fs.Changed("room") || *room != "" {
				return e.roomMembers(args, *room, *wait)
			}
			return e.peers(args, *wait)
		}
	},
}

// peerOutput is one element of `lanchat peers --json`.
type peerOutput struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	State      string    `json:"state"`
	StatusText string    `json:"status_text"`
	Addr       string    `json:"addr"`
	Verified   bool      `json:"verified"`
	Trusted    bool      `json:"trusted"`
	Warning    string    `json:"warning,omitempty"`
	LastSeen   time.Time `json:"last_seen"`
	Reachable  bool      `json:"reachable"`
	SeenBy     int       `json:"seen_by"`
}

func (e *env) peers(args []string, wait time.Duration) int {
	if len(args) > 0 {
		return e.usageErr("peers", "unexpected argument %q", args[0])
	}
	a, err := e.open(wait)
	if err != nil {
		return e.fail(err)
	}
	list, err := a.Peers(context.Background())
	if err != nil {
		return e.fail(err)
	}
	out := make([]peerOutput, 0, len(list))
	for _, p := range list {
		out = append(out, peerOutput{
			ID: p.ID, Name: p.Name, State: p.State, StatusText: p.StatusText,
			Addr: p.Addr, Verified: p.Verified, Trusted: p.Trusted, Warning: p.Warning,
			LastSeen:  p.LastSeen.UTC().Truncate(time.Millisecond),
			Reachable: p.Reachable, SeenBy: p.SeenBy,
		})
	}
	if e.g.json {
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintln(e.stdout, "nobody else is on the network yet")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tSTATUS\tADDRESS\tVERIFIED\tTRUSTED\tLAST SEEN")
	for _, p := range out {
		state := p.State
		if p.State != "offline" && p.State != "left" && !p.Reachable {
			state += " (" + unreachableText(p.SeenBy) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", displayName(p.Name, p.Warning), short(p.ID), state,
			cleanLine(p.StatusText), p.Addr, yesNo(p.Verified), yesNo(p.Trusted), ago(p.LastSeen, p.State))
	}
	tw.Flush()
	return exitOK
}

func ago(t time.Time, state string) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return "-"
	case d < 5*time.Second && state != "offline" && state != "left":
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}

// unreachableText says that a peer online for others is not reached from
// here, which is not offline: the fix is the network between the two.
func unreachableText(seenBy int) string {
	others := "others"
	if seenBy == 1 {
		others = "other"
	}
	return fmt.Sprintf("unreachable from here, seen by %d %s", seenBy, others)
}
