package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/pflag"

	"lanchat/cmd/lanchat/tui"
	"lanchat/node"
	"lanchat/node/api"
)

var uiCmd = command{
	name:    "ui",
	summary: "open the terminal UI: on the node running on this data directory, or on one it runs itself",
	example: "lanchat ui --name alice\nlanchat          # the same, on a terminal",
	level:   "info",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.ui(args) }
	},
}

// isTerminal reports whether both ends of the session are a terminal, as
// the UI needs and a pipe or a file is not.
func isTerminal(stdin io.Reader, stdout io.Writer) bool {
	in, ok1 := stdin.(*os.File)
	out, ok2 := stdout.(*os.File)
	return ok1 && ok2 && term.IsTerminal(in.Fd()) && term.IsTerminal(out.Fd())
}

// logName is where a node the UI runs writes its log: standard error is
// the UI's screen.
const logName = "lanchat.log"

// ui attaches to the node running on the data directory, or else runs one
// in this process for as long as the UI is open. Quitting leaves an
// attached node running; a node of its own says goodbye and stops.
func (e *env) ui(args []string) int {
	if len(args) > 0 {
		return e.usageErr("ui", "unexpected argument %q", args[0])
	}
	if !isTerminal(e.stdin, e.stdout) {
		fmt.Fprintln(e.stderr, "lanchat ui: needs a terminal; `lanchat run` prints events as lines instead")
		return exitUsage
	}
	// A closed terminal (SIGHUP) ends the UI as /quit does, so a node of
	// its own still says goodbye; Bubble Tea handles SIGINT and SIGTERM.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGHUP)
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	c, err := api.Connect(cctx, node.ControlSocket(e.g.dataDir))
	ccancel()
	if err == nil {
		defer c.Close()
		return e.uiResult(tui.Run(ctx, c, tui.Options{Mode: "attached", Notify: desktopNotifier()}, e.stdin, e.stdout))
	}
	if !errors.Is(err, api.ErrNoNode) {
		return e.fail(fmt.Errorf("the node on %s does not answer: %w", e.g.dataDir, err))
	}

	lw := &capWriter{path: filepath.Join(e.g.dataDir, logName), max: maxLog}
	defer lw.Close()
	cfg := e.nodeConfig()
	var level slog.Level
	_ = level.UnmarshalText([]byte(e.g.logLevel))
	cfg.Logger = slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level}))
	n, err := node.New(cfg)
	if err != nil {
		return e.fail(err)
	}
	defer n.Close()
	nctx, ncancel := context.WithCancel(context.Background())
	defer ncancel()
	var runErr error
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		runErr = n.Run(nctx)
		cancel() // a node that stops on its own ends the UI
	}()
	uiErr := tui.Run(ctx, n, tui.Options{Mode: "in-process", Notify: desktopNotifier()}, e.stdin, e.stdout)
	ncancel() // leave cleanly: peers see "left"
	<-ran
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, node.ErrClosed) {
		fmt.Fprintf(e.stderr, "lanchat: the node stopped (log: %s)\n", lw.path)
		return e.fail(runErr)
	}
	return e.uiResult(uiErr)
}

// desktopNotifier shows freedesktop notifications with notify-send
// (libnotify, over the session's D-Bus), or is nil — no notifications,
// silently — without a session bus or without notify-send.
func desktopNotifier() func(title, body string) {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return nil
	}
	bin, err := exec.LookPath("notify-send")
	if err != nil {
		return nil
	}
	return func(title, body string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		// "--": a name that starts with "-" is a title, not an option.
		_ = exec.CommandContext(ctx, bin, "--app-name=lanchat", "--", title, body).Run()
	}
}

func (e *env) uiResult(err error) int {
	if err == nil || errors.Is(err, tea.ErrInterrupted) || errors.Is(err, tea.ErrProgramKilled) {
		return exitOK
	}
	return e.fail(err)
}

// maxLog bounds the UI's node log: what peers do can grow it (refused
// connections are logged), so past the bound it starts again empty.
const maxLog = 8 << 20

// capWriter appends to a file opened on first use (the data directory
// exists by then), never through a symbolic link, and starts it again
// empty when it would pass max bytes.
type capWriter struct {
	path string
	max  int64

	mu   sync.Mutex // guards the fields below
	f    *os.File
	size int64
	err  error
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil && w.err == nil {
		w.f, w.err = os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
		if w.err == nil {
			if fi, err := w.f.Stat(); err == nil {
				w.size = fi.Size()
			}
		}
	}
	if w.err != nil {
		return len(p), nil // a log that cannot be written must not stop the node
	}
	if w.size+int64(len(p)) > w.max {
		if err := w.f.Truncate(0); err == nil {
			w.size = 0
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	if err != nil {
		return len(p), nil
	}
	return n, nil
}

func (w *capWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		return w.f.Close()
	}
	return nil
}
