package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var doctorCmd = command{
	name:    "doctor",
	args:    "[name|id]",
	summary: "explain what this node sees of the network, and what to fix",
	example: "lanchat doctor          # interfaces, multicast, mDNS, ports (a peer dials back), clocks, peers\nlanchat doctor bob      # and why bob can or cannot be reached (addresses, subnet, ports, what others see)\nlanchat doctor --json | jq -r '.findings[] | select(.status==\"fail\") | .fix'",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.doctor(args) }
	},
}

// doctorMarks are what a finding's status looks like in text.
var doctorMarks = map[string]string{
	api.FindingOK: "ok  ", api.FindingInfo: "info", api.FindingWarn: "WARN", api.FindingFail: "FAIL",
}

func (e *env) doctor(args []string) int {
	if len(args) > 1 {
		return e.usageErr("doctor", "at most one peer (a name or an id)")
	}
	q := api.DoctorQuery{}
	if len(args) == 1 {
		q.Peer = args[0]
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	rep, err := a.Doctor(context.Background(), q)
	if err != nil {
		return e.fail(err)
	}
	failed := false
	for _, f := range rep.Findings {
		failed = failed || f.Status == api.FindingFail
	}
	if e.g.json {
		writeJSON(e.stdout, rep)
	} else {
		for _, f := range rep.Findings {
			fmt.Fprintf(e.stdout, "%s %-18s %s\n", doctorMarks[f.Status], f.Check, cleanLine(f.Detail))
			if f.Fix != "" && f.Status != api.FindingOK {
				fmt.Fprintf(e.stdout, "     %-18s → %s\n", "", cleanLine(f.Fix))
			}
		}
	}
	if failed {
		return exitFail
	}
	return exitOK
}
