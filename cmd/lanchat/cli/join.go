package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var joinCmd = command{
	name:    "join",
	args:    "<#room|room>",
	summary: "join a room (or start it); its earlier history follows from the members",
	example: "lanchat join '#ops'   # quoted: '#' starts a shell comment\nlanchat join ops      # the same",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.join(args) }
	},
}

func (e *env) join(args []string) int {
	if len(args) == 0 {
		return e.usageErr("join", "which room? (%s)", quoteHint)
	}
	if len(args) > 1 {
		return e.usageErr("join", "one room at a time (got %d arguments)", len(args))
	}
	room, err := roomArg(args[0], true)
	if err != nil {
		return e.usageErr("join", "%v", err)
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	r, err := a.JoinRoom(context.Background(), api.RoomRequest{Room: room})
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, toRoomOutput(r))
		return exitOK
	}
	fmt.Fprintf(e.stdout, "joined %s: %s\n", cleanLine(r.Name), describeCounts(r))
	return exitOK
}
