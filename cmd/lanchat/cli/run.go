package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"lanchat/message/store"
	"lanchat/node"
)

var runCmd = command{
	name:    "run",
	summary: "run your node in the foreground, printing messages and presence changes",
	example: "lanchat run --name alice\nlanchat run --json | jq .   # one JSON object per event",
	level:   "info",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.run(args) }
	},
}

func (e *env) run(args []string) int {
	if len(args) > 0 {
		return e.usageErr("run", "unexpected argument %q", args[0])
	}
	n, err := node.New(e.nodeConfig())
	if err != nil {
		return e.fail(err)
	}
	events := make(chan any, 4096)
	cancelSub := n.Subscribe(func(ev any) {
		select {
		case events <- ev:
		default:
			// The printer is stuck (stdout not read); dropping an event
			// line is better than stalling the node.
		}
	})
	defer cancelSub()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		<-sigs
		cancel() // first signal: leave cleanly
		<-sigs
		fmt.Fprintln(e.stderr, "lanchat: second signal, exiting without goodbye")
		os.Exit(exitFail)
	}()

	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for ev := range events {
			e.printEvent(ev)
			// A message printed for a person to see has been read; one
			// printed as JSON for a script has not.
			if m, ok := ev.(node.MessageEvent); ok && !m.Outgoing && !e.g.json {
				if err := n.MarkRead(context.Background(), []string{m.ID}); err != nil && !errors.Is(err, store.ErrClosed) {
					e.log.Warn("mark read", "err", err)
				}
			}
		}
	}()
	err = n.Run(ctx)
	cancelSub()
	close(events)
	<-printed
	if err != nil && !errors.Is(err, context.Canceled) {
		return e.fail(err)
	}
	return exitOK
}

func (e *env) printEvent(ev any) {
	if e.g.json {
		if w, ok := ev.(node.WarningEvent); ok {
			w.Text = cleanLine(w.Text)
			ev = w
		}
		writeJSON(e.stdout, ev)
		return
	}
	now := time.Now().Format("15:04:05")
	switch v := ev.(type) {
	case node.ReadyEvent:
		fmt.Fprintf(e.stdout, "lanchat: you are %s (%s) at %s; gossip port %d, message port %d\n",
			cleanLine(v.Name), short(v.ID), v.Addr, v.GossipPort, v.Port)
		if !v.MDNS {
			fmt.Fprintln(e.stdout, "lanchat: mDNS is off; peers come from --join")
		}
	case node.MessageEvent:
		if v.Outgoing {
			fmt.Fprintf(e.stdout, "%s → %s: %s\n", now, cleanLine(v.To.Name), cleanLines(v.Text))
		} else {
			fmt.Fprintf(e.stdout, "%s %s: %s\n", now, cleanLine(v.From.Name), cleanLines(v.Text))
		}
	case node.PresenceEvent:
		fmt.Fprintf(e.stdout, "%s * %s\n", now, describePresence(v))
	case node.ReceiptEvent:
		if v.State == "read" {
			fmt.Fprintf(e.stdout, "%s * %s read your message %s\n", now, cleanLine(v.Peer.Name), v.ID[:8])
		}
	case node.WarningEvent:
		// already logged to standard error
	}
}

func describePresence(v node.PresenceEvent) string {
	who := fmt.Sprintf("%s (%s)", cleanLine(v.Peer.Name), short(v.Peer.ID))
	status := ""
	if v.StatusText != "" {
		status = ": " + cleanLine(v.StatusText)
	}
	switch v.Change {
	case "joined":
		return fmt.Sprintf("%s is here, %s%s", who, v.State, status)
	case "returned":
		return fmt.Sprintf("%s is back, %s%s", who, v.State, status)
	case "left":
		return who + " left"
	case "lost":
		return who + " went offline (no goodbye)"
	default:
		return fmt.Sprintf("%s is now %s%s", who, v.State, status)
	}
}

func short(id string) string {
	if len(id) > 7 {
		return id[:7]
	}
	return id
}
