package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var leaveCmd = command{
	name:    "leave",
	args:    "<#room|room>",
	summary: "leave a room; its history stays on disk",
	example: "lanchat leave '#ops'   # quoted: '#' starts a shell comment\nlanchat leave general",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.leave(args) }
	},
}

func (e *env) leave(args []string) int {
	if len(args) == 0 {
		return e.usageErr("leave", "which room? (%s)", quoteHint)
	}
	if len(args) > 1 {
		return e.usageErr("leave", "one room at a time (got %d arguments)", len(args))
	}
	room, err := roomArg(args[0], true)
	if err != nil {
		return e.usageErr("leave", "%v", err)
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	r, err := a.LeaveRoom(context.Background(), api.RoomRequest{Room: room})
	// not_member, as API.LeaveRoom says; not_found (what it said first)
	// would mean the same.
	if errors.Is(err, api.ErrNotMember) || errors.Is(err, api.ErrNotFound) {
		return e.fail(fmt.Errorf("you are not in %s (lanchat rooms lists yours)", room))
	}
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, toRoomOutput(r))
		return exitOK
	}
	fmt.Fprintf(e.stdout, "left %s; its history stays (lanchat history '%s')\n", cleanLine(r.Name), cleanLine(r.Name))
	return exitOK
}
