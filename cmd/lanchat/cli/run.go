package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"lanchat/node"
	"lanchat/node/api"
)

var runCmd = command{
	name:    "run",
	summary: "run your node in the foreground, printing messages, presence and room changes",
	example: "lanchat run --name alice\nlanchat run --json | jq .   # one JSON object per event",
	level:   "info",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		fa := registerFileFlags(fs)
		return func(e *env, args []string) int { e.fileArgs = fa; return e.run(args) }
	},
}

// run starts a node and prints its events, read as any client reads
// them: through the API's event stream. The first snapshot is taken
// before the node is up and says nothing the ready event does not, so it
// is not printed; a resync (this printer fell behind, e.g. stdout not
// read) is printed, and so is the snapshot that follows it, so a script
// always knows when it missed something.
func (e *env) run(args []string) int {
	if len(args) > 0 {
		return e.usageErr("run", "unexpected argument %q", args[0])
	}
	cfg := e.nodeConfig()
	max, err := e.fileArgs.maxSize()
	if err != nil {
		return e.usageErr("run", "%v", err)
	}
	cfg.DownloadDir, cfg.AcceptFrom, cfg.AcceptMaxSize = e.fileArgs.downloadDir, e.fileArgs.acceptFrom, max
	n, err := node.New(cfg)
	if err != nil {
		return e.fail(err)
	}
	defer n.Close()

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

	var runErr error
	var once sync.Once
	ran := make(chan struct{})
	startRun := func() {
		once.Do(func() {
			go func() {
				defer close(ran)
				runErr = n.Run(ctx)
			}()
		})
	}
	p := newPrinter(e)
	first := true
	for {
		err := n.Events(context.Background(), func(ev api.Event) error {
			if snap, ok := ev.(api.Snapshot); ok && first {
				first = false
				p.learn(snap) // who is who, for the mentions in room messages
				startRun()    // subscribed: nothing the node says from now on is missed
				return nil
			}
			p.print(ev)
			// A message printed for a person to see has been read; one
			// printed as JSON for a script has not.
			if m, ok := ev.(api.Message); ok && !m.Outgoing && !e.g.json {
				if err := n.MarkRead(context.Background(), api.ReadRequest{IDs: []string{m.ID}}); err != nil && !errors.Is(err, node.ErrClosed) {
					e.log.Warn("mark read", "err", err)
				}
			}
			return nil
		})
		if errors.Is(err, api.ErrResync) {
			continue // printed; a new subscription starts with a snapshot
		}
		break
	}
	startRun() // the stream may have ended before the node started (it could not)
	<-ran
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, node.ErrClosed) {
		return e.fail(runErr)
	}
	return exitOK
}

// printer prints run's events, text or JSON. It remembers who is who
// from the events it sees, since a room message's mentions are ids.
type printer struct {
	e     *env
	names *nameBook
}

func newPrinter(e *env) *printer { return &printer{e: e, names: newNameBook()} }

// learn takes in the names and this node's id an event carries.
func (p *printer) learn(ev api.Event) {
	switch v := ev.(type) {
	case api.Snapshot:
		p.names.self = v.Self.ID
		for _, peer := range v.Peers {
			p.names.learn(api.PeerRef{ID: peer.ID, Name: peer.Name})
		}
	case api.Ready:
		p.names.self = v.ID
	case api.Presence:
		p.names.learn(v.Peer)
	case api.Message:
		p.names.learn(v.From)
	case api.RoomChange:
		p.names.learn(v.Peer)
	}
}

func (p *printer) print(ev api.Event) {
	p.learn(ev)
	e := p.e
	if e.g.json {
		ev = ev.WithSeq(ev.EventSeq()) // sets its type, as the API's server does
		if w, ok := ev.(api.Warning); ok {
			w.Text = cleanLine(w.Text)
			ev = w
		}
		writeJSON(e.stdout, ev)
		return
	}
	now := time.Now().Format("15:04:05")
	switch v := ev.(type) {
	case api.Ready:
		fmt.Fprintf(e.stdout, "lanchat: you are %s (%s) at %s; gossip port %d, message port %d\n",
			cleanLine(v.Name), short(v.ID), v.Addr, v.GossipPort, v.Port)
		if !v.MDNS {
			fmt.Fprintln(e.stdout, "lanchat: mDNS is off; peers come from --join")
		}
	case api.Message:
		if v.Room != "" {
			fmt.Fprintf(e.stdout, "%s [%s] %s: %s%s\n", now, cleanLine(v.Room), refName(v.From), cleanLines(v.Text), p.names.mentions(v.Mentions))
		} else if v.Outgoing {
			fmt.Fprintf(e.stdout, "%s → %s: %s\n", now, refName(v.To), cleanLines(v.Text))
		} else {
			fmt.Fprintf(e.stdout, "%s %s: %s%s\n", now, refName(v.From), cleanLines(v.Text), timeNote(v.ClaimedTime, nil))
		}
	case api.Presence:
		if v.Change != api.ChangeVerified { // a person is told when a key fails, not each time one holds
			fmt.Fprintf(e.stdout, "%s * %s\n", now, describePresence(v))
		}
	case api.Receipt:
		if v.State == "read" {
			fmt.Fprintf(e.stdout, "%s * %s read your message %s\n", now, refName(v.Peer), short8(v.ID))
		}
	case api.RoomChange:
		who := fmt.Sprintf("%s (%s)", refName(v.Peer), short(v.Peer.ID))
		if v.Peer.ID == p.names.self && p.names.self != "" {
			who = "you"
		}
		if v.Change == api.RoomRetention {
			fmt.Fprintf(e.stdout, "%s * %s\n", now, describeSetting(who, v.Room.Name, v.Room.Retention))
			break
		}
		fmt.Fprintf(e.stdout, "%s * %s (%s)\n", now, describeMembership(who, v.Change == api.RoomJoined, v.Room.Name), describeCounts(v.Room))
	case api.SelfChange:
		state := v.Self.State
		if v.Self.StatusText != "" {
			state += ": " + cleanLine(v.Self.StatusText)
		}
		fmt.Fprintf(e.stdout, "%s * you are %s\n", now, state)
	case api.Resync:
		fmt.Fprintf(e.stdout, "%s * lanchat: %d events were not shown (output was not read fast enough)\n", now, v.Dropped)
	case api.Snapshot:
		fmt.Fprintf(e.stdout, "%s * lanchat: %d peers known, %d rooms\n", now, len(v.Peers), len(v.Rooms))
	case api.Warning:
		// already logged to standard error
	case api.FileOffer:
		fmt.Fprintf(e.stdout, "%s * %s (%s) offers %s: %d files, %s; lanchat accept %s (or decline)\n", now,
			refName(v.From), short(v.From.ID), describeNames(v.Names), v.Files, bytesText(v.Total), v.ID)
	case api.TransferChange:
		// Progress is for send-file's bar; a person here sees the ends.
		t := v.Transfer
		switch t.State {
		case api.TransferDone, api.TransferDeclined, api.TransferFailed:
			way := "from"
			if t.Direction == "out" {
				way = "to"
			}
			what := fmt.Sprintf("%s %s %s", describeNames(t.Names), way, refName(t.Peer))
			if t.Error != "" {
				what += ": " + cleanLine(t.Error)
			}
			fmt.Fprintf(e.stdout, "%s * transfer %s %s: %s\n", now, t.ID, t.State, what)
		}
	}
}

func describePresence(v api.Presence) string {
	who := fmt.Sprintf("%s (%s)", refName(v.Peer), short(v.Peer.ID))
	status := ""
	if v.StatusText != "" {
		status = ": " + cleanLine(v.StatusText)
	}
	switch v.Change {
	case api.ChangeJoined:
		return fmt.Sprintf("%s is here, %s%s", who, v.State, status)
	case api.ChangeReturned:
		return fmt.Sprintf("%s is back, %s%s", who, v.State, status)
	case api.ChangeLeft:
		return who + " left"
	case api.ChangeLost:
		return who + " went offline (no goodbye)"
	case api.ChangeVerified:
		return who + " is verified: its key was proven by a TLS handshake"
	case api.ChangeUnreachable:
		return who + " is " + unreachableText(v.SeenBy) + " (still " + v.State + " for them)"
	case api.ChangeReachable:
		return who + " is reachable from here again"
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

func short8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
