package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/spf13/pflag"
)

var roomsCmd = command{
	name:    "rooms",
	summary: "list your rooms, then the others your peers are in: members online/total, unread",
	example: "lanchat rooms\nlanchat rooms --json | jq -r '.[] | select(.joined) | .name'",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.rooms(args) }
	},
}

func (e *env) rooms(args []string) int {
	if len(args) > 0 {
		return e.usageErr("rooms", "unexpected argument %q", args[0])
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	list, err := a.Rooms(context.Background())
	if err != nil {
		return e.fail(err)
	}
	out := make([]roomOutput, 0, len(list))
	for _, r := range list {
		out = append(out, toRoomOutput(r))
	}
	// Yours first, then the others; by name within each.
	slices.SortStableFunc(out, func(a, b roomOutput) int {
		if a.Joined != b.Joined {
			if a.Joined {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if e.g.json {
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintln(e.stdout, "you are in no room, and know of none: lanchat join general (or any '#name') starts one")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tJOINED\tONLINE\tUNREAD\tKEEPS")
	for _, r := range out {
		joined := "no"
		if r.Joined {
			joined = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\n", cleanLine(r.Name), joined, r.MembersOnline, r.MembersTotal, r.Unread, describeRetention(r.Retention))
	}
	tw.Flush()
	return exitOK
}
