package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var statusCmd = command{
	name:    "status",
	args:    "<available|away|busy> [text…]",
	summary: "set your presence and status text",
	example: "lanchat status away \"at lunch\"\nlanchat status available",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.status(args) }
	},
}

// settableStates are the states a person may announce; offline and left
// are what others conclude.
var settableStates = []string{"available", "away", "busy"}

func (e *env) status(args []string) int {
	if len(args) == 0 {
		return e.usageErr("status", "which state? available, away or busy")
	}
	if !slices.Contains(settableStates, args[0]) {
		return e.usageErr("status", "unknown state %q (want available, away or busy)", args[0])
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	res, err := a.SetStatus(context.Background(), api.StatusRequest{State: args[0], Text: strings.Join(args[1:], " ")})
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		return exitOK
	}
	if res.Live {
		fmt.Fprintf(e.stdout, "you are now %s\n", describeState(res.State, res.Text))
	} else {
		fmt.Fprintf(e.stdout, "no node is running on %s; you will be %s when it starts\n", e.g.dataDir, describeState(res.State, res.Text))
	}
	return exitOK
}

func describeState(st, text string) string {
	if text == "" {
		return st
	}
	return st + ": " + cleanLine(text)
}
