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
	"lanchat/node"
)

var sendCmd = command{
	name:    "send",
	args:    "<name|id> <text…|->",
	summary: "send a message and wait until the recipient's node has it",
	example: "lanchat send bob \"build is green\"\nmake 2>&1 | tail -5 | lanchat send bob -   # text from standard input",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for delivery")
		return func(e *env, args []string) int { return e.send(args, *timeout) }
	},
}

// sendOutput is what `lanchat send --json` prints on success.
type sendOutput struct {
	ID    string       `json:"id"`
	To    node.PeerRef `json:"to"`
	State string       `json:"state"`
}

func (e *env) send(args []string, timeout time.Duration) int {
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
	if err := node.CheckText(text); err != nil {
		return e.fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var res node.SendResult
	var err error
	if c := e.client(); c != nil {
		res, err = c.Send(ctx, to, text)
	} else {
		var o *node.OneShot
		if o, err = node.NewOneShot(e.nodeConfig()); err == nil {
			res, err = o.Send(ctx, to, text)
		}
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not delivered within %v: %w", timeout, err)
		}
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, sendOutput{ID: res.ID, To: res.To, State: "delivered"})
		return exitOK
	}
	fmt.Fprintf(e.stdout, "delivered to %s (%s)\n", cleanLine(res.To.Name), short(res.To.ID))
	return exitOK
}
