package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var outboxCmd = command{
	name:    "outbox",
	summary: "list messages waiting for recipients who are offline",
	example: "lanchat outbox\nlanchat outbox --json",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.outbox(args) }
	},
}

func (e *env) outbox(args []string) int {
	if len(args) > 0 {
		return e.usageErr("outbox", "unexpected argument %q", args[0])
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	list, err := a.Outbox(context.Background())
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		if list == nil {
			list = []api.OutboxEntry{}
		}
		writeJSON(e.stdout, list)
		return exitOK
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "outbox is empty: everything was delivered")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPIENT\tID\tWAITING\tOLDEST")
	for _, o := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", refName(o.Peer), short(o.Peer.ID), o.Count, ago(o.Oldest, "offline"))
	}
	tw.Flush()
	return exitOK
}
