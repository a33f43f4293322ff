package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"lanchat/node"
	"lanchat/node/api"
)

var sendFileCmd = command{
	name:    "send-file",
	args:    "<name|id> <path>…",
	summary: "send files and folders to someone; waits until they have verified everything",
	example: "lanchat send-file bob report.pdf photos/\nlanchat send-file --json bob big.iso | jq .\nlanchat send-file --timeout 10m bob film.mkv   # no node running: wait up to 10 minutes",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		wait := fs.Duration("timeout", node.DefaultOneShotFileWait, "with no node running: how long to wait for the recipient to be found, to decide and to take the files; then exit 3 with the offer kept for the next `lanchat run`")
		return func(e *env, args []string) int { return e.sendFile(args, *wait) }
	},
}

// transferOutput is what --json prints for a transfer: the CLI's own
// shape, one object per line.
type transferOutput struct {
	ID        string   `json:"id"`
	Direction string   `json:"direction"`
	Peer      string   `json:"peer"`
	PeerID    string   `json:"peer_id"`
	Names     []string `json:"names"`
	Files     int      `json:"files"`
	Total     int64    `json:"total"`
	Done      int64    `json:"done"`
	FilesDone int      `json:"files_done"`
	Current   string   `json:"current,omitempty"`
	// The current file's bytes done and its size.
	CurrentDone int64    `json:"current_done,omitempty"`
	CurrentSize int64    `json:"current_size,omitempty"`
	State       string   `json:"state"`
	Error       string   `json:"error,omitempty"`
	Skipped     []string `json:"skipped,omitempty"`
	Sent        int64    `json:"sent,omitempty"`
}

func toTransferOutput(t api.Transfer) transferOutput {
	names := make([]string, len(t.Names))
	for i, n := range t.Names {
		names[i] = cleanLine(n)
	}
	return transferOutput{
		ID: t.ID, Direction: t.Direction, Peer: cleanLine(t.Peer.Name), PeerID: t.Peer.ID, Names: names,
		Files: t.Files, Total: t.Total, Done: t.Done, FilesDone: t.FilesDone, Current: cleanLine(t.Current), CurrentDone: t.CurrentDone, CurrentSize: t.CurrentSize, State: t.State, Error: cleanLine(t.Error), Skipped: t.Skipped, Sent: t.Sent,
	}
}

// files is the running node's file API: accepting, declining and listing
// need one (a one-shot receives nothing; send-file has a one-shot way of
// its own).
func (e *env) files() (api.API, api.Files, error) {
	a, err := e.open(0)
	if err != nil {
		return nil, nil, err
	}
	f, ok := a.(api.Files)
	if !ok {
		return nil, nil, errors.New("files are sent and received by a running node: start one with `lanchat run`")
	}
	return a, f, nil
}

func (e *env) sendFile(args []string, wait time.Duration) int {
	if len(args) < 2 {
		return e.usageErr("send-file", "who, and what? (lanchat send-file bob report.pdf)")
	}
	if wait <= 0 {
		return e.usageErr("send-file", "--timeout must be more than 0 (got %v)", wait)
	}
	paths := make([]string, 0, len(args)-1)
	for _, p := range args[1:] {
		abs, err := filepath.Abs(p)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return e.fail(err)
		}
		paths = append(paths, abs)
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	if o, ok := a.(*node.OneShot); ok {
		return e.sendFileOneShot(o, args[0], paths, wait)
	}
	f, ok := a.(api.Files)
	if !ok {
		return e.fail(errors.New("this node does not send files"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(e.stderr, "lanchat: stopped watching; the node goes on sending (lanchat transfers)")
			cancel()
		case <-ctx.Done():
		}
	}()

	// Subscribe before offering, so no change of the transfer is missed.
	changes := make(chan api.Transfer, 64)
	subscribed := make(chan struct{})
	evErr := make(chan error, 1)
	go func() {
		evErr <- a.Events(ctx, func(ev api.Event) error {
			switch v := ev.(type) {
			case api.Snapshot:
				select {
				case <-subscribed:
				default:
					close(subscribed)
				}
			case api.TransferChange:
				select {
				case changes <- v.Transfer:
				default: // the latest state comes again
				}
			}
			return nil
		})
	}()
	select {
	case <-subscribed:
	case err := <-evErr:
		return e.fail(err)
	}
	t, err := f.OfferFiles(ctx, api.FileOfferRequest{To: args[0], Paths: paths})
	if err != nil {
		return e.fail(err)
	}
	for _, s := range t.Skipped {
		fmt.Fprintf(e.stderr, "lanchat: not sent: %s (a symbolic link or special file)\n", cleanLine(s))
	}
	bar := e.progressBar(t)
	show := e.showTransfer(bar)
	show(t)
	told := false
	for {
		select {
		case c := <-changes:
			if c.ID != t.ID {
				continue
			}
			t = c
			show(t)
			if t.State == api.TransferWaiting && !told && !e.g.json {
				told = true
				fmt.Fprintf(e.stderr, "lanchat: waiting for %s (away, deciding, or cut off); the node keeps trying\n", refName(t.Peer))
			}
			switch t.State {
			case api.TransferDone:
				if bar != nil {
					bar.Finish()
					fmt.Fprintln(e.stderr)
				}
				if !e.g.json {
					fmt.Fprintf(e.stdout, "sent %s to %s: %d files, %s, verified\n", describeNames(t.Names), refName(t.Peer), t.Files, bytesText(t.Total))
				}
				return exitOK
			case api.TransferDeclined, api.TransferFailed:
				if bar != nil {
					fmt.Fprintln(e.stderr)
				}
				return e.fail(fmt.Errorf("%s: %s", t.State, t.Error))
			}
		case err := <-evErr:
			if ctx.Err() != nil {
				return exitFail
			}
			return e.fail(fmt.Errorf("lost the node's events: %w", err))
		}
	}
}

// showTransfer prints a transfer's change: a line of --json, or the
// progress bar moved.
func (e *env) showTransfer(bar *progressbar.ProgressBar) func(api.Transfer) {
	return func(t api.Transfer) {
		if e.g.json {
			writeJSON(e.stdout, toTransferOutput(t))
		} else if bar != nil {
			if t.Files > 1 && t.Current != "" {
				// A folder: the file, how far it is, and how many are done,
				// beside the bar of the whole.
				bar.Describe(fmt.Sprintf("%s %s (%d/%d files) → %s", cleanLine(t.Current), filePercent(t), t.FilesDone, t.Files, refName(t.Peer)))
			}
			bar.Set64(t.Done)
		}
	}
}

// sendFileOneShot sends with no node running: directly, waiting at most
// wait; what is not through by then stays queued for the next node run.
func (e *env) sendFileOneShot(o *node.OneShot, to string, paths []string, wait time.Duration) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var bar *progressbar.ProgressBar
	var show func(api.Transfer)
	started, told := false, false
	t, err := o.SendFiles(ctx, api.FileOfferRequest{To: to, Paths: paths}, wait, func(t api.Transfer) {
		if !started {
			started = true
			for _, s := range t.Skipped {
				fmt.Fprintf(e.stderr, "lanchat: not sent: %s (a symbolic link or special file)\n", cleanLine(s))
			}
			bar = e.progressBar(t)
			show = e.showTransfer(bar)
		}
		show(t)
		if t.State == api.TransferWaiting && !told && !e.g.json {
			told = true
			fmt.Fprintf(e.stderr, "lanchat: waiting for %s (away, deciding, or cut off), up to %v\n", refName(t.Peer), wait)
		}
	})
	if err != nil {
		return e.fail(err)
	}
	if bar != nil && t.State != api.TransferDone {
		fmt.Fprintln(e.stderr)
	}
	switch t.State {
	case api.TransferDone:
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(e.stderr)
		}
		if !e.g.json {
			fmt.Fprintf(e.stdout, "sent %s to %s: %d files, %s, verified\n", describeNames(t.Names), refName(t.Peer), t.Files, bytesText(t.Total))
		}
		return exitOK
	case api.TransferDeclined, api.TransferFailed:
		return e.fail(fmt.Errorf("%s: %s", t.State, t.Error))
	}
	if e.g.json {
		// Where it stands: the id, for a script to follow it up.
		writeJSON(e.stdout, toTransferOutput(t))
	}
	if ctx.Err() != nil {
		fmt.Fprintf(e.stderr, "lanchat: stopped with %s of %s sent to %s: the offer is kept, and the next `lanchat run` on this data directory, or this command again, continues it\n",
			bytesText(t.Done), bytesText(t.Total), refName(t.Peer))
		return exitQueued
	}
	fmt.Fprintf(e.stderr, "lanchat: not through to %s after %v (%s of %s): the offer is kept, and the next `lanchat run` on this data directory, or this command again, continues it\n",
		refName(t.Peer), wait, bytesText(t.Done), bytesText(t.Total))
	return exitQueued
}

// progressBar shows bytes, rate and time left on standard error when it
// is a terminal and the output is for a person.
func (e *env) progressBar(t api.Transfer) *progressbar.ProgressBar {
	if e.g.json {
		return nil
	}
	f, ok := e.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(t.Total,
		progressbar.OptionSetWriter(io.Writer(f)),
		progressbar.OptionSetDescription(fmt.Sprintf("%s → %s", describeNames(t.Names), refName(t.Peer))),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*1e6),
		progressbar.OptionSetWidth(30),
	)
}

func describeNames(ns []string) string {
	switch len(ns) {
	case 0:
		return "nothing"
	case 1:
		return cleanLine(ns[0])
	}
	return fmt.Sprintf("%s and %d more", cleanLine(ns[0]), len(ns)-1)
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// filePercent is how far the current file of a transfer is, "37%".
func filePercent(t api.Transfer) string {
	if t.CurrentSize <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%d%%", t.CurrentDone*100/t.CurrentSize)
}
