package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/pflag"

	"lanchat/internal/netkey"
)

var keygenCmd = command{
	name:    "keygen",
	summary: "make a new network key for a closed office network",
	example: "lanchat keygen                       # print it, to read out or paste\nlanchat keygen -o ~/.config/lanchat/network.key   # write it, mode 0600",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		out := fs.StringP("output", "o", "", "write the key to this file (mode 0600; an existing file is never replaced)")
		return func(e *env, args []string) int { return e.keygen(args, *out) }
	},
}

// keygenOutput is what `lanchat keygen --json` prints.
type keygenOutput struct {
	Key  string `json:"key,omitempty"`  // left out when written to a file
	File string `json:"file,omitempty"` // where it was written
	Tag  string `json:"tag"`            // the network's public tag
}

func (e *env) keygen(args []string, out string) int {
	if len(args) > 0 {
		return e.usageErr("keygen", "unexpected argument %q", args[0])
	}
	key, err := netkey.Generate()
	if err != nil {
		return e.fail(err)
	}
	k, err := netkey.Parse(key)
	if err != nil {
		return e.fail(err) // never: Generate writes what Parse reads
	}
	res := keygenOutput{Key: key, Tag: k.Tag()}
	if out != "" {
		body := fmt.Sprintf("# lanchat network key, made %s; network tag %s\n%s\n", time.Now().Format("2006-01-02"), k.Tag(), key)
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return e.fail(fmt.Errorf("%s exists; lanchat keygen never replaces a key (remove it first, or choose another file)", out))
		}
		if err != nil {
			return e.fail(err)
		}
		if _, err := f.WriteString(body); err != nil {
			f.Close()
			os.Remove(out)
			return e.fail(err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(out)
			return e.fail(err)
		}
		if err := f.Close(); err != nil {
			return e.fail(err)
		}
		res.Key, res.File = "", out
	}
	switch {
	case e.g.json:
		writeJSON(e.stdout, res)
	case out != "":
		fmt.Fprintf(e.stdout, "wrote a new network key to %s (network tag %s); copy it to every node of the network, mode 0600\n", out, res.Tag)
	default:
		fmt.Fprintln(e.stdout, key)
	}
	return exitOK
}
