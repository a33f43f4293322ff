package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
)

var idCmd = command{
	name:    "id",
	summary: "print your peer id and name",
	example: "lanchat id\nlanchat id --json",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.id(args) }
	},
}

// idOutput is what `lanchat id --json` prints.
type idOutput struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (e *env) id(args []string) int {
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
	out := idOutput{ID: self.ID, Name: self.Name}
	if e.g.json {
		writeJSON(e.stdout, out)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%s\n%s\n", out.ID, cleanLine(out.Name))
	return exitOK
}
