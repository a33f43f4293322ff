package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
)

var idCmd = command{
	name:    "id",
	summary: "print your peer id and name",
	example: "lanchat id\nlanchat id --fingerprint   # read it out to a colleague, who compares it with `lanchat contacts`\nlanchat id --json",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		fp := fs.Bool("fingerprint", false, "print only the fingerprint: six groups of five digits to compare in person")
		return func(e *env, args []string) int { return e.id(args, *fp) }
	},
}

// idOutput is what `lanchat id --json` prints.
type idOutput struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

func (e *env) id(args []string, fingerprintOnly bool) int {
	if len(args) > 0 {
		return e.usageErr("id", "unexpected argument %q", args[0])
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	self, err := a.Self(context.Background())
	if err != nil {
		return e.fail(err)
	}
	out := idOutput{ID: self.ID, Name: self.Name, Fingerprint: self.Fingerprint}
	switch {
	case e.g.json:
		writeJSON(e.stdout, out)
	case fingerprintOnly:
		fmt.Fprintln(e.stdout, out.Fingerprint)
	default:
		fmt.Fprintf(e.stdout, "%s\n%s\n%s\n", out.ID, cleanLine(out.Name), out.Fingerprint)
	}
	return exitOK
}
