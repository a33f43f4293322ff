package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"lanchat/node/api"
)

// memberOutput is one element of `lanchat peers --room R --json`.
type memberOutput struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Online bool   `json:"online"`
	You    bool   `json:"you,omitempty"` // this data directory's own entry
	// Trusted and Warning: as in lanchat peers.
	Trusted bool   `json:"trusted,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// roomMembers is `lanchat peers --room R`: the room's members with their
// presence, this node marked.
func (e *env) roomMembers(args []string, roomFlag string, wait time.Duration) int {
	if len(args) > 0 {
		return e.usageErr("peers", "unexpected argument %q", args[0])
	}
	if roomFlag == "" {
		return e.usageErr("peers", "--room: which room? (%s)", quoteHint)
	}
	room, err := roomArg(roomFlag, true)
	if err != nil {
		return e.usageErr("peers", "--room: %v", err)
	}
	a, err := e.open(wait)
	if err != nil {
		return e.fail(err)
	}
	ctx := context.Background()
	list, err := a.RoomMembers(ctx, room)
	if errors.Is(err, api.ErrNotMember) {
		return e.fail(fmt.Errorf("%w (lanchat join %s)", err, room[1:]))
	}
	if err != nil {
		return e.fail(err)
	}
	self, err := a.Self(ctx)
	if err != nil {
		return e.fail(err)
	}
	out := make([]memberOutput, 0, len(list))
	for _, m := range list {
		out = append(out, memberOutput{ID: m.ID, Name: m.Name, State: m.State, Online: m.Online, You: m.ID == self.ID,
			Trusted: m.Trusted, Warning: m.Warning})
	}
	if e.g.json {
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintf(e.stdout, "%s has no members\n", room)
		return exitOK
	}
	online := 0
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATE")
	for _, m := range out {
		name := displayName(m.Name, m.Warning)
		if m.You {
			name += " (you)"
		}
		if m.Online {
			online++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, short(m.ID), cleanLine(m.State))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%s: %d of %d online\n", room, online, len(out))
	return exitOK
}
