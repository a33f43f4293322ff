package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/pflag"
)

var transfersCmd = command{
	name:    "transfers",
	summary: "list file offers and transfers, both ways, with progress",
	example: "lanchat transfers\nlanchat transfers --json",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.transfers(args) }
	},
}

func (e *env) transfers(args []string) int {
	if len(args) > 0 {
		return e.usageErr("transfers", "unexpected argument %q", args[0])
	}
	_, f, err := e.files()
	if err != nil {
		return e.fail(err)
	}
	ts, err := f.Transfers(context.Background())
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		out := make([]transferOutput, len(ts))
		for i, t := range ts {
			out[i] = toTransferOutput(t)
		}
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(ts) == 0 {
		fmt.Fprintln(e.stdout, "no transfers")
		return exitOK
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tWAY\tPEER\tWHAT\tPROGRESS\tSTATE")
	for _, t := range ts {
		way := "from"
		if t.Direction == "out" {
			way = "to"
		}
		pct := 100
		if t.Total > 0 {
			pct = int(t.Done * 100 / t.Total)
		}
		state := t.State
		if t.Error != "" && (t.State == "failed" || t.State == "waiting") {
			state += ": " + cleanLine(t.Error)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s (%d of %d files)\t%s of %s (%d%%)\t%s\n", t.ID, way, refName(t.Peer),
			describeNames(t.Names), t.FilesDone, t.Files, bytesText(t.Done), bytesText(t.Total), pct, state)
	}
	w.Flush()
	return exitOK
}
