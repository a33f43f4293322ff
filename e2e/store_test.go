//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// The durable side of messaging, end to end: store-and-forward across
// restarts of either side, one-shot sends queued in the data directory,
// receipts, a history file that is not ours, and search. The chaos run is
// in chaos_test.go.

// deliverWithin bounds how long queued messages may take to arrive once
// their recipient is back. The target is about two seconds after the
// sender sees the recipient again; the bound leaves room for a loaded
// machine and for discovery.
const deliverWithin = 10 * time.Second

// sendOut is what `lanchat send --json` prints.
type sendOut struct {
	ID    string  `json:"id"`
	To    peerRef `json:"to"`
	State string  `json:"state"`
}

// checkOutboxFor returns nil if ob holds exactly count messages, all for
// peer, named by its id (and by its name, if named).
func checkOutboxFor(ob []outboxEntry, peer *node, count int, named bool) error {
	if len(ob) != 1 || ob[0].Peer.ID != peer.id() || ob[0].Count != count || (named && ob[0].Peer.Name != peer.name) {
		return fmt.Errorf("outbox %+v, want one entry: %d for %s (%.12s)", ob, count, peer.name, peer.id())
	}
	if _, err := time.Parse(time.RFC3339Nano, ob[0].Oldest); err != nil {
		return fmt.Errorf("outbox %+v: oldest: %w", ob, err)
	}
	return nil
}

// checkConversation returns nil if hs, the history of one conversation
// between from and to as one side sees it, holds exactly want, in that
// order, each written by from for to (by id; by name too if named), in
// state (if state is not empty).
func checkConversation(hs []histEntry, from, to *node, want []string, state string, named bool) error {
	if got := texts(hs); !slices.Equal(got, want) {
		return fmt.Errorf("history texts %q, want exactly %q, in that order", got, want)
	}
	for _, h := range hs {
		if h.From.ID != from.id() || h.To.ID != to.id() || (named && (h.From.Name != from.name || h.To.Name != to.name)) {
			return fmt.Errorf("history entry %+v, want from %s (%.12s) to %s (%.12s)", h, from.name, from.id(), to.name, to.id())
		}
		if state != "" && h.State != state {
			return fmt.Errorf("history entry %q is %s, want %s", h.Text, h.State, state)
		}
		if h.ID == "" {
			return fmt.Errorf("history entry %+v has no id", h)
		}
	}
	return checkHistoryOrder(hs)
}

// receivedTexts lists the texts of the messages n printed as received from
// the peer with id from, in the order printed.
func receivedTexts(n *node, from string) []string {
	var out []string
	for _, m := range n.received() {
		if m.From.ID == from {
			out = append(out, m.Text)
		}
	}
	return out
}

func TestOfflineDeliveryAfterSenderRestart(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	if code := bob.Stop(); code != 0 {
		t.Errorf("bob exited %d on SIGTERM, want 0", code)
	}
	waitSees(t, seeTimeout, []*node{alice}, []*node{bob}, "left")

	want := []string{"while you were out: 1", "while you were out: 2", "while you were out: 3"}
	for _, text := range want {
		r := alice.cli("send", "bob", text)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "queued for bob") {
			t.Fatalf("want exit 0 and \"queued for bob\": %v", r)
		}
	}
	ob, err := alice.outbox()
	if err == nil {
		err = checkOutboxFor(ob, bob, 3, true)
	}
	if err != nil {
		t.Fatalf("alice, before the crash: %v", err)
	}

	// A crash of the sender loses nothing that was reported queued.
	alice.Kill()
	alice = restart(t, alice)
	ob, err = alice.outbox()
	if err == nil {
		// By id: whether bob's name survives a crash this soon after
		// meeting him is TestContactNameSurvivesCrash's question.
		err = checkOutboxFor(ob, bob, 3, false)
	}
	if err != nil {
		t.Fatalf("alice, restarted after SIGKILL: %v", err)
	}

	bob = restart(t, bob)
	back := bob.ready.at
	waitFor(t, deliverWithin, func() error {
		if got := receivedTexts(bob, alice.id()); len(got) < len(want) {
			return fmt.Errorf("bob has received %q of %q", got, want)
		}
		return nil
	})
	msgs := bob.received()
	t.Logf("all delivered %v after bob was ready", msgs[len(msgs)-1].at.Sub(back).Round(time.Millisecond))

	waitFor(t, seeTimeout, alice.outboxEmpty)
	// Once, in order: in bob's event stream and in both histories.
	if got := receivedTexts(bob, alice.id()); !slices.Equal(got, want) {
		t.Errorf("bob printed messages %q, want exactly %q, in that order", got, want)
	}
	bh, err := bob.history("alice")
	if err == nil {
		// bob's own name in it is TestHistoryNamesBothSides's question.
		err = checkConversation(bh, alice, bob, want, "", false)
	}
	if err != nil {
		t.Errorf("bob's history of alice: %v", err)
	}
	ah, err := alice.history("bob")
	if err == nil {
		err = checkConversation(ah, alice, bob, want, "delivered", true)
	}
	if err != nil {
		t.Fatalf("alice's history of bob: %v", err)
	}
	if len(bh) != len(ah) {
		t.Fatalf("bob's history holds %d messages of alice, alice's %d", len(bh), len(ah))
	}
	for i, h := range ah {
		if !h.Outgoing || bh[i].Outgoing {
			t.Errorf("%q: outgoing %v at alice and %v at bob, want true and false", h.Text, h.Outgoing, bh[i].Outgoing)
		}
		if bh[i].ID != h.ID {
			t.Errorf("%q has id %s at alice and %s at bob", h.Text, h.ID, bh[i].ID)
		}
		// The restarted node delivered them, and says so.
		waitReceipt(t, alice, h.ID, "delivered", bob)
	}
}

// TestContactNameSurvivesCrash: a peer seen, then gone, can be addressed
// by name after the node crashed and restarted, however soon after the
// meeting the crash came. The contract: recipients seen before can be
// addressed by name while offline (contacts kept in the data directory).
func TestContactNameSurvivesCrash(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	if code := bob.Stop(); code != 0 {
		t.Errorf("bob exited %d on SIGTERM, want 0", code)
	}
	waitSees(t, seeTimeout, []*node{alice}, []*node{bob}, "left")
	if r := alice.cli("send", "bob", "before the crash"); r.code != 0 || !strings.HasPrefix(r.stdout, "queued for bob") {
		t.Fatalf("want exit 0 and \"queued for bob\": %v", r)
	}

	alice.Kill()
	alice = restart(t, alice)
	r := alice.cli("send", "bob", "after the crash")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "queued for bob") {
		t.Errorf("send by name to bob, seen before the crash: want exit 0 and \"queued for bob\": %v", r)
	}
	queued := 2
	if r.code != 0 {
		queued = 1
	}
	ob, err := alice.outbox()
	if err == nil {
		err = checkOutboxFor(ob, bob, queued, true)
	}
	if err != nil {
		t.Errorf("alice, restarted: %v", err)
	}
}

func TestOneShotQueuedThenDeliveredByNextNode(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	// carol and bob meet once, so that carol's data directory knows bob.
	nodes := startNodes(t, lab.Hosts, "carol", "bob")
	carol, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, n := range nodes {
		if code := n.Stop(); code != 0 {
			t.Errorf("%s exited %d on SIGTERM, want 0", n, code)
		}
	}

	// No node runs on carol's data directory, nobody is on the LAN: the
	// one-shot command stores the messages and says they are queued.
	oneShot := func(args ...string) cliResult {
		t.Helper()
		return runCLI(t, carol.host, append([]string{"--data-dir", carol.dataDir, "--name", "carol"}, args...)...)
	}
	want := []string{"left in the outbox by a one-shot", "and one more, as JSON"}
	if r := oneShot("send", "bob", want[0]); r.code != 0 || !strings.HasPrefix(r.stdout, "queued for bob") {
		t.Fatalf("want exit 0 and \"queued for bob\": %v", r)
	}
	r := oneShot("send", "--json", "bob", want[1])
	var so sendOut
	if err := decodeJSON(r, &so); err != nil {
		t.Fatal(err)
	}
	if so.State != "queued" || so.To.ID != bob.id() || so.To.Name != "bob" || so.ID == "" {
		t.Fatalf("send --json = %+v, want state queued, to bob (%.12s), an id", so, bob.id())
	}
	ob, err := outboxIn(t, carol.host, carol.dataDir, "carol")
	if err == nil {
		err = checkOutboxFor(ob, bob, 2, true)
	}
	if err != nil {
		t.Fatalf("carol's outbox read without a node: %v", err)
	}
	hs, err := historyIn(t, carol.host, carol.dataDir, "carol", "bob")
	if err == nil {
		err = checkConversation(hs, carol, bob, want, "queued", true)
	}
	if err != nil {
		t.Fatalf("carol's history read without a node: %v", err)
	}

	// The next node on carol's data directory delivers them.
	carol = restart(t, carol)
	bob = restart(t, bob)
	waitFor(t, deliverWithin+healWithin, func() error {
		if got := receivedTexts(bob, carol.id()); len(got) < len(want) {
			return fmt.Errorf("bob has received %q of %q", got, want)
		}
		return nil
	})
	waitFor(t, seeTimeout, carol.outboxEmpty)
	if got := receivedTexts(bob, carol.id()); !slices.Equal(got, want) {
		t.Errorf("bob printed messages %q, want exactly %q, in that order", got, want)
	}
	for _, m := range bob.received() {
		if m.From.Name != "carol" {
			t.Errorf("bob got %s, want from.name carol", m.raw)
		}
	}
	hs, err = carol.history("bob")
	if err == nil {
		err = checkConversation(hs, carol, bob, want, "delivered", true)
	}
	if err != nil {
		t.Errorf("carol's history of bob: %v", err)
	}
	if len(hs) == 2 && hs[1].ID != so.ID {
		t.Errorf("carol's history has id %s for %q, send --json said %s", hs[1].ID, want[1], so.ID)
	}
}

func TestReceiptsReachSender(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	text := "did you see this?"
	var so sendOut
	if err := decodeJSON(alice.cli("send", "--json", "bob", text), &so); err != nil {
		t.Fatal(err)
	}
	if so.State != "delivered" || so.To.ID != bob.id() || so.To.Name != "bob" || so.ID == "" {
		t.Fatalf("send --json = %+v, want delivered to bob (%.12s) with an id", so, bob.id())
	}
	waitFor(t, seeTimeout, func() error {
		for _, m := range alice.eventsOf("message") {
			if m.ID == so.ID {
				if !m.Outgoing || m.Text != text {
					return fmt.Errorf("alice printed %s, want outgoing:true and text %q", m.raw, text)
				}
				return nil
			}
		}
		return fmt.Errorf("alice printed no message event with id %s", so.ID)
	})
	waitReceipt(t, alice, so.ID, "delivered", bob)
	waitMessage(t, bob, alice.id(), text)

	// stateOf returns the state of the message in n's history of peer.
	stateOf := func(n, peer *node) string {
		t.Helper()
		hs, err := n.history(peer.name)
		if err != nil {
			t.Fatal(err)
		}
		es := byText(hs, text)
		if len(es) != 1 || es[0].ID != so.ID {
			t.Fatalf("%s's history of %s holds %+v for %q, want one entry with id %s", n, peer, es, text, so.ID)
		}
		return es[0].State
	}
	// A script reading JSON is not a person: nothing is read yet.
	if got := stateOf(bob, alice); got != "delivered" {
		t.Errorf("after bob's history --json, bob has the message %s, want delivered", got)
	}
	if got := stateOf(alice, bob); got != "delivered" {
		t.Errorf("alice has the message %s, want delivered", got)
	}
	if ev, ok := alice.receipt(so.ID, "read"); ok {
		t.Errorf("alice printed %s before bob read the message", ev.raw)
	}

	// bob reads it.
	r := bob.cli("history", "alice")
	if r.code != 0 || !strings.Contains(r.stdout, text) {
		t.Fatalf("want exit 0 and the message: %v", r)
	}
	waitReceipt(t, alice, so.ID, "read", bob)
	waitFor(t, seeTimeout, func() error {
		if got := stateOf(alice, bob); got != "read" {
			return fmt.Errorf("alice has the message %s, want read", got)
		}
		return nil
	})
	if got := stateOf(bob, alice); got != "read" {
		t.Errorf("bob has the message %s after reading it, want read", got)
	}
	// Both histories hold it as read (names: TestHistoryNamesBothSides).
	for _, pair := range [][2]*node{{alice, bob}, {bob, alice}} {
		hs, err := pair[0].history(pair[1].name)
		if err == nil {
			err = checkConversation(hs, alice, bob, []string{text}, "read", false)
		}
		if err != nil {
			t.Errorf("%s's history of %s: %v", pair[0], pair[1], err)
		}
	}

	t.Run("wait for an offline peer", func(t *testing.T) {
		if code := carol.Stop(); code != 0 {
			t.Errorf("carol exited %d on SIGTERM, want 0", code)
		}
		waitSees(t, seeTimeout, []*node{alice}, []*node{carol}, "left")
		start := time.Now()
		r := alice.cli("send", "--json", "--wait", "--timeout", "2s", "carol", "still there?")
		took := time.Since(start)
		if r.code != 3 {
			t.Fatalf("want exit 3 (still queued): %v", r)
		}
		var so sendOut
		if err := json.Unmarshal([]byte(r.stdout), &so); err != nil || so.State != "queued" || so.To.ID != carol.id() {
			t.Errorf("send --json = %q (%v), want state queued, to carol (%.12s)", r.stdout, err, carol.id())
		}
		if took < 2*time.Second || took > 2*time.Second+cliTimeout/4 {
			t.Errorf("send --wait --timeout 2s returned after %v, want a little over 2s", took.Round(time.Millisecond))
		}
		waitReceipt(t, alice, so.ID, "queued", carol)
		if ev, ok := alice.receipt(so.ID, "delivered"); ok {
			t.Errorf("alice printed %s, but carol is away", ev.raw)
		}
		// And it goes out when carol is back.
		carol = restart(t, carol)
		waitMessage(t, carol, alice.id(), "still there?")
		waitReceipt(t, alice, so.ID, "delivered", carol)
		waitFor(t, seeTimeout, alice.outboxEmpty)
	})
}

// writeForeignSQLite makes path an SQLite database of some other program,
// with the sqlite3 command; it skips the test without one.
func writeForeignSQLite(t *testing.T, path string) {
	t.Helper()
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 command to write a foreign database with")
	}
	out, err := exec.Command(sqlite3, path,
		"CREATE TABLE messages(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO messages(body) VALUES ('not lanchat');").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
}

// lanchatDB runs a node on dir for a moment, so that it writes a history
// database there, and returns the database's bytes.
func lanchatDB(t *testing.T, h *netlab.Host, dir string) []byte {
	t.Helper()
	n := startNode(t, h, nodeOpts{name: "alice", dataDir: dir})
	if code := n.Stop(); code != 0 {
		t.Fatalf("%s exited %d on SIGTERM", n, code)
	}
	for _, f := range []string{"history.db-wal", "history.db-shm"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			t.Fatalf("%s left %s after a clean exit: the database is not self-contained", n, f)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCorruptHistoryRefused(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 1)
	h := lab.Hosts[0]
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	for _, tc := range []struct {
		name string
		// write puts the bad file at path; nil: contents is written.
		write    func(t *testing.T, path string)
		contents []byte
	}{
		{name: "random bytes", contents: random(64 << 10)},
		{name: "a few random bytes", contents: random(7)},
		{name: "sqlite magic then garbage", contents: append([]byte("SQLite format 3\x00"), random(8192)...)},
		{name: "text", contents: bytes.Repeat([]byte("these are my notes, not a database\n"), 100)},
		{name: "another program's sqlite database", write: writeForeignSQLite},
		{name: "lanchat database with garbled pages", write: func(t *testing.T, path string) {
			b := lanchatDB(t, h, filepath.Dir(path))
			if len(b) <= 4096 {
				t.Fatalf("a lanchat database of %d bytes: want more than one page to garble", len(b))
			}
			rand.Read(b[4096:])
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "truncated lanchat database", write: func(t *testing.T, path string) {
			b := lanchatDB(t, h, filepath.Dir(path))
			if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newDataDir(t)
			path := filepath.Join(dir, "history.db")
			if tc.write != nil {
				tc.write(t, path)
			} else if err := os.WriteFile(path, tc.contents, 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			unchanged := func(after string) {
				t.Helper()
				now, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("after %s: %v", after, err)
				}
				if !bytes.Equal(now, before) {
					t.Errorf("after %s, %s changed (%d bytes, was %d)", after, path, len(now), len(before))
				}
				for _, suffix := range []string{"-wal", "-shm", "-journal"} {
					if _, err := os.Lstat(path + suffix); err == nil {
						t.Errorf("after %s, %s exists", after, path+suffix)
					}
				}
			}

			n := launchNode(t, h, nodeOpts{name: "alice", dataDir: dir})
			code, err := n.waitExit(stopTimeout)
			if err != nil {
				t.Fatalf("run on a bad history: %v", err)
			}
			if code == 0 {
				t.Errorf("run exited 0, want non-zero")
			}
			if ev := n.firstEvent(); ev != nil && ev.Type == "ready" {
				t.Errorf("run printed %s, want no ready line", ev.raw)
			}
			if log := n.stderr.String(); !strings.Contains(log, path) {
				t.Errorf("run's error does not name %s:\n%s", path, log)
			}
			unchanged("run")

			// The commands that read the file without a node refuse it too.
			for _, args := range [][]string{{"history", "--json"}, {"outbox", "--json"}} {
				r := runCLI(t, h, append([]string{"--data-dir", dir, "--name", "alice"}, args...)...)
				if r.code == 0 || !strings.Contains(r.stderr, path) {
					t.Errorf("want a non-zero exit and an error naming %s: %v", path, r)
				}
				unchanged(args[0])
			}
		})
	}
}

// TestHistoryNamesBothSides: every entry of history --json names both
// its author and its recipient, by id and by name, the node's own name
// included, whether a node answers or the database is read without one.
func TestHistoryNamesBothSides(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, m := range [][3]string{{"alice", "bob", "hi bob"}, {"bob", "alice", "hi alice"}} {
		from := alice
		if m[0] == "bob" {
			from = bob
		}
		if r := from.cli("send", m[1], m[2]); r.code != 0 || !strings.HasPrefix(r.stdout, "delivered to "+m[1]) {
			t.Fatalf("want delivered: %v", r)
		}
	}
	want := map[string]*node{"hi bob": alice, "hi alice": bob}
	check := func(t *testing.T, n *node) {
		hs, err := historyIn(t, n.host, n.dataDir, n.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := texts(hs); !slices.Equal(got, []string{"hi bob", "hi alice"}) {
			t.Fatalf("%s's history %q, want [hi bob, hi alice]", n, got)
		}
		for _, h := range hs {
			from := want[h.Text]
			to := alice
			if from == alice {
				to = bob
			}
			if h.From != (peerRef{from.id(), from.name}) || h.To != (peerRef{to.id(), to.name}) {
				t.Errorf("%s's history: %q from %+v to %+v, want from %s (%.12s) to %s (%.12s)",
					n, h.Text, h.From, h.To, from.name, from.id(), to.name, to.id())
			}
			if h.Outgoing != (from == n) {
				t.Errorf("%s's history: %q has outgoing %v", n, h.Text, h.Outgoing)
			}
		}
	}
	for _, n := range nodes {
		t.Run("through "+n.name+"'s node", func(t *testing.T) { check(t, n) })
	}
	for _, n := range nodes {
		if code := n.Stop(); code != 0 {
			t.Errorf("%s exited %d on SIGTERM, want 0", n, code)
		}
	}
	for _, n := range nodes {
		t.Run(n.name+" without a node", func(t *testing.T) { check(t, n) })
	}
}

func TestHistorySearch(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	for _, m := range []struct {
		from, to *node
		text     string
	}{
		{alice, bob, "quarterly report draft attached"},
		{bob, alice, "lunch at noon?"},
		{alice, carol, "the report numbers look odd"},
		{carol, alice, "report: all green now"},
		{carol, bob, "unrelated chatter about bikes"},
		{bob, carol, "Grüße aus dem Büro"},
	} {
		if r := m.from.cli("send", m.to.name, m.text); r.code != 0 || !strings.HasPrefix(r.stdout, "delivered to "+m.to.name) {
			t.Fatalf("want delivered: %v", r)
		}
	}

	// The searches, as alice (through her node) and carol (from her data
	// directory, without a node) see them.
	type searchCase struct {
		name string
		args []string // after history --json
		want []string // texts, oldest first
	}
	cases := func(n string) []searchCase {
		switch n {
		case "alice":
			return []searchCase{
				{"across conversations", []string{"--search", "report"}, []string{
					"quarterly report draft attached", "the report numbers look odd", "report: all green now"}},
				{"received only", []string{"--search", "lunch"}, []string{"lunch at noon?"}},
				{"within one conversation", []string{"carol", "--search", "report"}, []string{
					"the report numbers look odd", "report: all green now"}},
				{"no match", []string{"--search", "zebra"}, []string{}},
				{"not others' messages", []string{"--search", "bikes"}, []string{}},
			}
		default: // carol
			return []searchCase{
				{"across conversations", []string{"--search", "report"}, []string{
					"the report numbers look odd", "report: all green now"}},
				{"sent and received", []string{"--search", "bikes"}, []string{"unrelated chatter about bikes"}},
				{"non-ascii", []string{"--search", "Grüße"}, []string{"Grüße aus dem Büro"}},
			}
		}
	}
	hostile := []string{
		`"`, `""`, `"report`, `report"`, `*`, `report*`, `NEAR(`, `NEAR(report lunch, 2)`, `NEAR(report`,
		`AND`, `OR`, `NOT`, `report AND`, `OR report`, `-report`, `^report`, `(`, `)`, `((report)`,
		`{report}`, `text:report`, `body:report`, `:`, `'`, `\`, `%`, `_`, `'; DROP TABLE messages; --`,
		`report NEAR/3 lunch`, `😀`, "\t", " ", strings.Repeat("report ", 2000), strings.Repeat("(", 500),
	}

	check := func(t *testing.T, search func(args ...string) ([]histEntry, error), name string) {
		for _, tc := range cases(name) {
			t.Run(tc.name, func(t *testing.T) {
				hs, err := search(tc.args...)
				if err != nil {
					t.Fatal(err)
				}
				if got := texts(hs); !slices.Equal(got, tc.want) {
					t.Errorf("history --json %q = %q, want %q", tc.args, got, tc.want)
				}
			})
		}
		t.Run("hostile", func(t *testing.T) {
			for _, q := range hostile {
				if _, err := search("--search=" + q); err != nil {
					t.Errorf("search %.40q: %v", q, err)
				}
			}
			// And normal searches still work afterwards.
			if hs, err := search("--search", "report"); err != nil || len(hs) == 0 {
				t.Errorf("search report after the hostile ones: %+v, %v", hs, err)
			}
		})
	}
	t.Run("through the node", func(t *testing.T) {
		check(t, alice.history, "alice")
		if alice.exited() {
			t.Errorf("alice exited: %v", alice.exitState())
		}
	})
	t.Run("without a node", func(t *testing.T) {
		if code := carol.Stop(); code != 0 {
			t.Errorf("carol exited %d on SIGTERM, want 0", code)
		}
		check(t, func(args ...string) ([]histEntry, error) {
			return historyIn(t, carol.host, carol.dataDir, "carol", args...)
		}, "carol")
	})
}
