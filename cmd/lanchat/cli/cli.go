// Package cli is lanchat's command line: one file per subcommand, each with
// its own flags, all sharing the global flags below. It is a package rather
// than part of main so tests can drive it with their own writers.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"lanchat/internal/ratelog"
	"lanchat/node"
	"lanchat/node/api"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	// exitQueued: send --wait timed out with the message still queued.
	exitQueued = 3
)

// env is what a command runs with: its flags and where its output goes.
type env struct {
	g      *globalArgs
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// fileArgs: run's flags for received files (nil for other commands)
	fileArgs *fileArgs
}

// globalArgs are the flags every command takes, before or after its name.
type globalArgs struct {
	name       string
	dataDir    string
	bind       string
	iface      []string
	port       int
	gossipPort int
	join       []string
	noMDNS     bool
	logLevel   string
	json       bool
	sync       string
	// reconnectHorizon: how long peers lost without a goodbye are dialled
	reconnectHorizon time.Duration
	networkKeyFile   string
}

func (g *globalArgs) register(fs *pflag.FlagSet, defLevel string) {
	def := node.DefaultConfig()
	fs.StringVar(&g.name, "name", def.Name, "display name others see")
	fs.StringVar(&g.dataDir, "data-dir", def.DataDir, "where the identity, lock and control socket live")
	fs.StringVar(&g.bind, "bind", "", "IP address to listen on (default: the LAN address)")
	fs.StringSliceVar(&g.iface, "iface", nil, "network interface to use, and only those; repeat or comma-separate for several (default: every LAN interface, not VPNs or container bridges)")
	fs.IntVar(&g.port, "port", def.Port, "TLS port for messages (a free one if taken)")
	fs.IntVar(&g.gossipPort, "gossip-port", def.GossipPort, "gossip port (a free one if taken)")
	fs.StringSliceVar(&g.join, "join", nil, "host:port gossip addresses of peers to join, comma-separated")
	fs.BoolVar(&g.noMDNS, "no-mdns", false, "do not use multicast DNS; find peers with --join only")
	fs.StringVar(&g.logLevel, "log-level", defLevel, "debug, info, warn or error (logs go to standard error)")
	fs.BoolVar(&g.json, "json", false, "print JSON instead of text")
	fs.StringVar(&g.sync, "sync", "normal", "history durability: normal (survives a crash of lanchat) or full (also a power cut; slower)")
	fs.DurationVar(&g.reconnectHorizon, "reconnect-horizon", def.ReconnectHorizon, "how long a peer lost without a goodbye is still dialled (with backoff) before it is forgotten")
	fs.StringVar(&g.networkKeyFile, "network-key-file", "", "the office key file (lanchat keygen): join only the closed network of that key")
}

// valueFlags are the global flags that take a value, so the command name
// can be found among flags given before it.
var valueFlags = map[string]bool{
	"name": true, "data-dir": true, "bind": true, "iface": true, "port": true,
	"gossip-port": true, "join": true, "log-level": true, "sync": true,
	"reconnect-horizon": true, "network-key-file": true,
}

type command struct {
	name    string
	args    string // positional arguments, for usage
	summary string
	example string
	level   string // default log level
	flags   func(fs *pflag.FlagSet) func(e *env, args []string) int
}

var commands = []command{runCmd, uiCmd, sendCmd, peersCmd, statusCmd, historyCmd, outboxCmd, idCmd, roomsCmd, joinCmd, leaveCmd, contactsCmd, trustCmd, untrustCmd, keygenCmd, doctorCmd, retentionCmd,
	sendFileCmd, acceptCmd, declineCmd, transfersCmd}

// Main runs the command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name, rest := splitCommand(args)
	if name == "" {
		if hasHelp(rest) {
			usage(stdout)
			return exitOK
		}
		// A bare `lanchat` opens the UI on a terminal, and otherwise runs
		// the node printing lines, as `run` does (a service, a pipe).
		name = "run"
		if isTerminal(stdin, stdout) {
			name = "ui"
		}
	}
	if name == "help" {
		usage(stdout)
		return exitOK
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "lanchat: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	fs := pflag.NewFlagSet("lanchat "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g := &globalArgs{}
	g.register(fs, cmd.level)
	run := cmd.flags(fs)
	fs.Usage = func() {} // help and errors are printed below
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			commandUsage(stdout, cmd, fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "lanchat %s: %v\n(see lanchat %s --help)\n", cmd.name, err, cmd.name)
		return exitUsage
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "lanchat: %v\n", err)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		fmt.Fprintf(stderr, "lanchat: --log-level %q: want debug, info, warn or error\n", g.logLevel)
		return exitUsage
	}
	e := &env{
		g: g, stdin: stdin, stdout: stdout, stderr: stderr,
		// A peer that floods us with bad input must not flood the log too.
		log: slog.New(ratelog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), 0, 0, nil)),
	}
	return run(e, fs.Args())
}

// splitCommand finds the command name among args, skipping global flags
// (and their values) given before it.
func splitCommand(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			n := strings.TrimLeft(a, "-")
			if !strings.Contains(n, "=") && valueFlags[n] {
				i++
			}
			continue
		}
		rest := append(append([]string{}, args[:i]...), args[i+1:]...)
		return a, rest
	}
	return "", args
}

func hasHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" {
			return true
		}
	}
	return false
}

// applyEnv gives every flag not set on the command line the value of
// LANCHAT_<FLAG> (upper case, dashes as underscores), if set.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		key := "LANCHAT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", key, v, e)
			}
		}
	})
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "lanchat: chat on your local network, no server needed")
	fmt.Fprintln(w, "\nusage: lanchat [global flags] <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexamples:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n", strings.SplitN(c.example, "\n", 2)[0])
	}
	fmt.Fprintln(w, "\n'lanchat <command> --help' shows a command's flags. Every flag can also be")
	fmt.Fprintln(w, "set by an environment variable: --data-dir by LANCHAT_DATA_DIR, and so on.")
}

func commandUsage(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "usage: lanchat %s [flags] %s\n\n%s\n\nexample:\n", c.name, c.args, c.summary)
	for _, l := range strings.Split(c.example, "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintf(w, "\nflags (each also read from LANCHAT_<FLAG>, e.g. LANCHAT_DATA_DIR):\n%s", fs.FlagUsages())
}

func (e *env) nodeConfig() node.Config {
	return node.Config{
		DataDir: e.g.dataDir, Name: e.g.name, Bind: e.g.bind, Iface: e.g.iface,
		Port: e.g.port, GossipPort: e.g.gossipPort, Join: e.g.join, NoMDNS: e.g.noMDNS,
		ReconnectHorizon: e.g.reconnectHorizon, NetworkKeyFile: e.g.networkKeyFile,
		Sync: e.g.sync, Logger: e.log,
	}
}

// open returns the local API for the data directory: the running node's,
// through its control socket, or else a one-shot that finds peers and
// talks to them itself (wait bounds its search for peers). Every command
// then takes one code path.
func (e *env) open(wait time.Duration) (api.API, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := api.Connect(ctx, node.ControlSocket(e.g.dataDir))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, api.ErrNoNode) {
		// A node runs but will not talk to us (another user's, or hung):
		// acting beside it would write its data directory behind its back.
		return nil, fmt.Errorf("the node on %s does not answer: %w", e.g.dataDir, err)
	}
	o, err := node.NewOneShot(e.nodeConfig())
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		o.Wait = wait
	}
	return o, nil
}

// flagNames maps the node's configuration fields to the flags that set them.
var flagNames = map[string]string{
	"Name": "--name", "DataDir": "--data-dir", "Bind": "--bind", "Iface": "--iface",
	"Join": "--join", "Sync": "--sync", "Port": "--port", "GossipPort": "--gossip-port",
}

func (e *env) fail(err error) int {
	msg := err.Error()
	var ce *node.ConfigError
	if errors.As(err, &ce) {
		if f, ok := flagNames[ce.Field]; ok {
			msg = f + ": " + ce.Err.Error()
		}
	}
	fmt.Fprintf(e.stderr, "lanchat: %s\n", cleanLines(msg))
	return exitFail
}

func (e *env) usageErr(cmd string, format string, a ...any) int {
	fmt.Fprintf(e.stderr, "lanchat %s: %s\n(see lanchat %s --help)\n", cmd, fmt.Sprintf(format, a...), cmd)
	return exitUsage
}
