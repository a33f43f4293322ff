package cli

import (
	"context"
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
	args:    "<name|id> <text…|->",
	summary: "send a message; kept and delivered later if the recipient is offline",
	example: "lanchat send bob \"build is green\"\nmake 2>&1 | tail -5 | lanchat send bob -   # text from standard input\nlanchat send --wait --timeout 2m bob \"call me\"   # exit 3 if not delivered by then",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for delivery")
		wait := fs.Bool("wait", false, "wait for delivery even if the recipient is offline; exit 3 if still queued after --timeout")
		return func(e *env, args []string) int { return e.send(args, *wait, *timeout) }
	},
}

// sendOutput is what `lanchat send --json` prints on success.
type sendOutput struct {
	ID    string      `json:"id"`
	To    api.PeerRef `json:"to"`
	State string      `json:"state"`
}

func (e *env) send(args []string, wait bool, timeout time.Duration) int {
	if len(args) < 2 {
		return e.usageErr("send", "need a recipient and a message")
	}
	to := args[0]
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
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, sendOutput{ID: res.ID, To: res.To, State: res.State})
	} else if res.Delivered() {
		fmt.Fprintf(e.stdout, "delivered to %s (%s)\n", cleanLine(res.To.Name), short(res.To.ID))
	} else {
		fmt.Fprintf(e.stdout, "queued for %s (%s): not reachable now; it will be delivered when they are back\n",
			cleanLine(res.To.Name), short(res.To.ID))
	}
	if wait && !res.Delivered() {
		return exitQueued
	}
	return exitOK
}
