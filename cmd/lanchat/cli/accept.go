package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var acceptCmd = command{
	name:    "accept",
	args:    "<offer-id>",
	summary: "accept files someone offers you (ids: lanchat transfers)",
	example: "lanchat accept 3f9a0c2d41b7e685",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.settle("accept", args) }
	},
}

var declineCmd = command{
	name:    "decline",
	args:    "<offer-id>",
	summary: "decline files someone offers you",
	example: "lanchat decline 3f9a0c2d41b7e685",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.settle("decline", args) }
	},
}

func (e *env) settle(cmd string, args []string) int {
	if len(args) != 1 {
		return e.usageErr(cmd, "one offer id (lanchat transfers lists them)")
	}
	_, f, err := e.files()
	if err != nil {
		return e.fail(err)
	}
	req := api.TransferRequest{ID: args[0]}
	var t api.Transfer
	if cmd == "accept" {
		t, err = f.AcceptTransfer(context.Background(), req)
	} else {
		t, err = f.DeclineTransfer(context.Background(), req)
	}
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, toTransferOutput(t))
		return exitOK
	}
	verb := "accepted"
	if cmd == "decline" {
		verb = "declined"
	}
	fmt.Fprintf(e.stdout, "%s %s from %s: %d files, %s\n", verb, describeNames(t.Names), refName(t.Peer), t.Files, bytesText(t.Total))
	return exitOK
}
