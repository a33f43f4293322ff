package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"lanchat/mesh"
	"lanchat/node"
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

func (e *env) status(args []string) int {
	if len(args) == 0 {
		return e.usageErr("status", "which state? available, away or busy")
	}
	st, err := mesh.ParseState(args[0])
	if err != nil {
		return e.usageErr("status", "%v", err)
	}
	text := strings.Join(args[1:], " ")
	if err := mesh.ValidStatus(text); err != nil {
		return e.fail(err)
	}
	if c := e.client(); c != nil {
		if err := c.SetStatus(context.Background(), st.String(), text); err != nil {
			return e.fail(err)
		}
		if !e.g.json {
			fmt.Fprintf(e.stdout, "you are now %s\n", describeState(st, text))
		}
		return exitOK
	}
	if err := node.SavePresence(e.g.dataDir, st, text); err != nil {
		return e.fail(err)
	}
	if !e.g.json {
		fmt.Fprintf(e.stdout, "no node is running on %s; you will be %s when it starts\n", e.g.dataDir, describeState(st, text))
	}
	return exitOK
}

func describeState(st mesh.State, text string) string {
	if text == "" {
		return st.String()
	}
	return st.String() + ": " + cleanLine(text)
}
