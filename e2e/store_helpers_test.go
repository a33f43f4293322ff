//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// Helpers for the tests of durable messaging (store_test.go, chaos_test.go):
// history, outbox and receipts as the command line and the event stream
// show them.

// histEntry is one entry of `lanchat history --json`.
type histEntry struct {
	ID       string  `json:"id"`
	From     peerRef `json:"from"`
	To       peerRef `json:"to"`
	Text     string  `json:"text"`
	Time     string  `json:"time"`
	Outgoing bool    `json:"outgoing"`
	State    string  `json:"state"` // queued, sent, delivered, read
}

// outboxEntry is one entry of `lanchat outbox --json`.
type outboxEntry struct {
	Peer   peerRef `json:"peer"`
	Count  int     `json:"count"`
	Oldest string  `json:"oldest"`
}

// restart starts a new node on n's host and data directory (n must have
// exited) and waits for it to be ready.
func restart(t testing.TB, n *node) *node {
	t.Helper()
	if !n.exited() {
		t.Fatalf("restart %s: it is still running", n)
	}
	r := startNode(t, n.host, nodeOpts{name: n.name, dataDir: n.dataDir})
	if r.id() != n.id() {
		t.Errorf("%s came back as %.12s, want its old id %.12s", r, r.id(), n.id())
	}
	return r
}

// dirCLI runs lanchat on host h against the data directory dir, as name
// (so a one-shot command, when no node runs there, signs as name). Safe
// off the test goroutine.
func dirCLI(t testing.TB, h *netlab.Host, dir, name string, args ...string) (cliResult, error) {
	return tryCLI(h, lanchatBin(t), "", append([]string{"--data-dir", dir, "--name", name}, args...)...)
}

// decodeJSON runs a --json command's result through json.Unmarshal into v,
// with the whole result in the error.
func decodeJSON(r cliResult, v any) error {
	if r.code != 0 {
		return fmt.Errorf("%v", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		return fmt.Errorf("decode %v: %w", r, err)
	}
	return nil
}

// historyIn returns `history --json --limit 100000 [args…]` of the data
// directory dir on host h (through the node's control socket if one runs
// there, else read from the database).
func historyIn(t testing.TB, h *netlab.Host, dir, name string, args ...string) ([]histEntry, error) {
	r, err := dirCLI(t, h, dir, name, append([]string{"history", "--json", "--limit", "100000"}, args...)...)
	if err != nil {
		return nil, err
	}
	var hs []histEntry
	if err := decodeJSON(r, &hs); err != nil {
		return nil, err
	}
	if hs == nil {
		return nil, fmt.Errorf("%v: want a JSON array, got null", r)
	}
	return hs, nil
}

// outboxIn returns `outbox --json` of the data directory dir on host h.
func outboxIn(t testing.TB, h *netlab.Host, dir, name string) ([]outboxEntry, error) {
	r, err := dirCLI(t, h, dir, name, "outbox", "--json")
	if err != nil {
		return nil, err
	}
	var list []outboxEntry
	if err := decodeJSON(r, &list); err != nil {
		return nil, err
	}
	if list == nil {
		return nil, fmt.Errorf("%v: want a JSON array ([] when empty), got null", r)
	}
	return list, nil
}

// history is historyIn for a node's data directory.
func (n *node) history(args ...string) ([]histEntry, error) {
	return historyIn(n.t, n.host, n.dataDir, n.name, args...)
}

// outbox is outboxIn for a node's data directory.
func (n *node) outbox() ([]outboxEntry, error) {
	return outboxIn(n.t, n.host, n.dataDir, n.name)
}

// outboxEmpty returns nil once n's outbox is empty.
func (n *node) outboxEmpty() error {
	ob, err := n.outbox()
	if err != nil {
		return err
	}
	if len(ob) != 0 {
		return fmt.Errorf("%s outbox: %+v, want []", n, ob)
	}
	return nil
}

// receipt returns the first receipt event n printed about message id in
// state, and whether there is one.
func (n *node) receipt(id, state string) (event, bool) {
	for _, ev := range n.eventsOf("receipt") {
		if ev.ID == id && ev.State == state {
			return ev, true
		}
	}
	return event{}, false
}

// waitReceipt waits until n printed a receipt event for message id in
// state, about peer, and returns it.
func waitReceipt(t testing.TB, n *node, id, state string, peer *node) event {
	t.Helper()
	var got event
	waitFor(t, seeTimeout, func() error {
		ev, ok := n.receipt(id, state)
		if !ok {
			var seen []string
			for _, r := range n.eventsOf("receipt") {
				if r.ID == id {
					seen = append(seen, r.State)
				}
			}
			return fmt.Errorf("%s printed no receipt %s for %s (receipts for it: %v)", n, state, id, seen)
		}
		got = ev
		return nil
	})
	if got.Peer.ID != peer.id() || got.Peer.Name != peer.name {
		t.Errorf("%s: receipt %s names peer %+v, want %s (%.12s)", n, got.raw, got.Peer, peer.name, peer.id())
	}
	return got
}

// byText returns the entries of hs with text.
func byText(hs []histEntry, text string) []histEntry {
	var out []histEntry
	for _, h := range hs {
		if h.Text == text {
			out = append(out, h)
		}
	}
	return out
}

// texts lists the texts of hs, for messages.
func texts(hs []histEntry) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Text
	}
	return out
}

// checkHistoryOrder returns an error unless hs's times never go back:
// history is newest last.
func checkHistoryOrder(hs []histEntry) error {
	var prev time.Time
	for i, h := range hs {
		at, err := time.Parse(time.RFC3339Nano, h.Time)
		if err != nil {
			return fmt.Errorf("entry %d %+v: time: %w", i, h, err)
		}
		if at.Before(prev) {
			return fmt.Errorf("entry %d (%q at %s) is older than the one before it (%s): want newest last",
				i, h.Text, h.Time, prev.Format(time.RFC3339Nano))
		}
		prev = at
	}
	return nil
}

// firstLines shortens a list for a failure message.
func firstLines(list []string, max int) string {
	if len(list) <= max {
		return strings.Join(list, "\n  ")
	}
	return strings.Join(list[:max], "\n  ") + fmt.Sprintf("\n  … and %d more", len(list)-max)
}
