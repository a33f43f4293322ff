package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var contactsCmd = command{
	name:    "contacts",
	summary: "list the contact book: who is trusted for which name",
	example: "lanchat contacts\nlanchat contacts --json | jq -r '.[] | select(.warning) | .id'",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.contacts(args) }
	},
}

var trustCmd = command{
	name:    "trust",
	summary: "pin a peer's id for the name it uses (after checking its fingerprint)",
	example: "lanchat trust K2QF\nlanchat trust K2QFZ7Q4XJ5D…   # a whole id, or a prefix of at least 4 characters",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.trust(args, true) }
	},
}

var untrustCmd = command{
	name:    "untrust",
	summary: "unpin a peer: its name is no longer vouched for",
	example: "lanchat untrust K2QF",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.trust(args, false) }
	},
}

func (e *env) contacts(args []string) int {
	if len(args) > 0 {
		return e.usageErr("contacts", "unexpected argument %q", args[0])
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	list, err := a.Contacts(context.Background())
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, list)
		return exitOK
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no contacts yet")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tTRUSTED\tFINGERPRINT\tLAST SEEN")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", displayName(c.Name, c.Warning), short(c.ID), trustWord(c), c.Fingerprint, ago(c.LastSeen, "offline"))
	}
	tw.Flush()
	return exitOK
}

// trustWord says how a contact came to be trusted, or not.
func trustWord(c api.Contact) string {
	switch {
	case c.Trusted && c.ByUser:
		return "yes (by you)"
	case c.Trusted:
		return "yes (first seen)"
	case c.Untrusted:
		return "no (by you)"
	}
	return "no"
}

func (e *env) trust(args []string, trust bool) int {
	name := "untrust"
	if trust {
		name = "trust"
	}
	if len(args) != 1 {
		return e.usageErr(name, "give one peer id (or a prefix of at least 4 characters)")
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	call := a.Untrust
	if trust {
		call = a.Trust
	}
	c, err := call(context.Background(), api.TrustRequest{ID: args[0]})
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, c)
		return exitOK
	}
	if trust {
		fmt.Fprintf(e.stdout, "trusted %s (%s) for its name; fingerprint %s\n", cleanLine(c.Name), short(c.ID), c.Fingerprint)
	} else {
		fmt.Fprintf(e.stdout, "no longer trusting %s (%s)\n", cleanLine(c.Name), short(c.ID))
	}
	return exitOK
}
