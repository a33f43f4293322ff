package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"lanchat/message"
	"lanchat/node/api"
)

var sendCmd = command{
	name:    "send",
	args:    "<name|id|'#room'> <text…|->",
	summary: "send a message to a person or a room; kept and delivered later to whoever is offline",
	example: "lanchat send bob \"build is green\"\nmake 2>&1 | tail -5 | lanchat send bob -   # text from standard input\nlanchat send --wait --timeout 2m bob \"call me\"   # exit 3 if not delivered by then\nlanchat send '#general' \"standup in 5\"   # a room: quote it, '#' starts a shell comment",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for delivery")
		wait := fs.Bool("wait", false, "wait for delivery even if the recipient is offline (a room: until every member online now has it); exit 3 if not after --timeout")
		return func(e *env, args []string) int { return e.send(args, *wait, *timeout) }
	},
}

// sendOutput is what `lanchat send --json` prints on success.
type sendOutput struct {
	ID    string      `json:"id"`
	To    api.PeerRef `json:"to"`
	State string      `json:"state"`
}

// roomSendOutput is what `lanchat send '#room' --json` prints on success:
// online is how many other members were online when it was sent, reached
// how many of them have stored it.
type roomSendOutput struct {
	ID      string `json:"id"`
	Room    string `json:"room"`
	State   string `json:"state"`
	Online  int    `json:"online"`
	Reached int    `json:"reached"`
}

func (e *env) send(args []string, wait bool, timeout time.Duration) int {
	if len(args) < 2 {
		return e.usageErr("send", "need a recipient and a message (a room goes quoted, since '#' starts a shell comment: lanchat send '#general' hi)")
	}
	to := args[0]
	if isRoom(to) {
		if _, err := roomArg(to, false); err != nil {
			return e.usageErr("send", "%v", err)
		}
	}
	text := strings.Join(args[1:], " ")
	if len(args) == 2 && args[1] == "-" {
		b, err := io.ReadAll(io.LimitReader(e.stdin, message.MaxText+1))
		if err != nil {
			return e.fail(fmt.Errorf("read standard input: %w", err))
		}
		text = strings.TrimSuffix(string(b), "\n")
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	// The node bounds its wait by timeout; the call gets a little more so
	// that its answer ("queued") arrives rather than our own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	res, err := a.Send(ctx, api.SendRequest{To: to, Text: text, Wait: wait, TimeoutMS: max(1, timeout.Milliseconds())})
	if errors.Is(err, api.ErrUnknownRecipient) && !isRoom(to) && message.ValidRoom("#"+to) {
		err = fmt.Errorf("%w\n(for the room, write '#%s', quoted)", err, to) // after the node's list of who is online
	}
	if errors.Is(err, api.ErrNotMember) && isRoom(to) {
		err = fmt.Errorf("%w (join it first: lanchat join %s)", err, to[1:])
	}
	if err != nil {
		return e.fail(err)
	}
	if res.Room != "" {
		return e.sentToRoom(res, wait)
	}
	if e.g.json {
		writeJSON(e.stdout, sendOutput{ID: res.ID, To: res.To, State: res.State})
	} else if res.Delivered() {
		fmt.Fprintf(e.stdout, "delivered to %s (%s)\n", refName(res.To), short(res.To.ID))
	} else {
		fmt.Fprintf(e.stdout, "queued for %s (%s): not reachable now; it will be delivered when they are back\n",
			refName(res.To), short(res.To.ID))
	}
	if wait && !res.Delivered() {
		return exitQueued
	}
	return exitOK
}

// sentToRoom reports a room message: how many of the members online when
// it was sent have it. With --wait, all of them must have it by
// --timeout, or the exit code is 3; the message is stored either way, and
// whoever lacks it gets it from the first member they meet.
func (e *env) sentToRoom(res api.SendReply, wait bool) int {
	room := cleanLine(res.Room)
	if e.g.json {
		writeJSON(e.stdout, roomSendOutput{ID: res.ID, Room: res.Room, State: res.State, Online: res.Online, Reached: res.Reached})
	} else {
		fmt.Fprintf(e.stdout, "sent to %s: %s\n", room, describeReach(res.Online, res.Reached))
	}
	if wait && res.Reached < res.Online {
		if !e.g.json {
			fmt.Fprintf(e.stderr, "lanchat: --wait ran out with %d online members still without it; they get it from the first member they meet\n", res.Online-res.Reached)
		}
		return exitQueued
	}
	return exitOK
}

// describeReach is "3 of 4 online members have it", in words that fit
// the numbers.
func describeReach(online, reached int) string {
	switch {
	case online == 0:
		return "no other member is online now; members get it when they are back"
	case online == 1 && reached >= 1:
		return "the one other member online has it"
	case online == 1:
		return "the one other member online does not have it yet"
	case reached == online:
		return fmt.Sprintf("all %d online members have it", online)
	case reached == 1:
		return fmt.Sprintf("1 of %d online members has it", online)
	}
	return fmt.Sprintf("%d of %d online members have it", reached, online)
}
