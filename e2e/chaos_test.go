//go:build linux

package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// The chaos run: three nodes send each other numbered messages, one
// `lanchat send` per message, while nodes are killed and restarted, a host
// is unplugged and every host loses a fifth of its packets. At the end
// every message whose send exited 0 must be in the sender's and the
// recipient's history exactly once, per sender in the order sent, and
// nothing else may be there.

const (
	// chaosPerPair is how many messages each sender → recipient stream
	// must have sent (exit 0); 6 streams make 1,020 messages.
	chaosPerPair = 170
	// chaosPace spaces a stream's sends while the faults go on, so that
	// the messages are spread over the whole schedule rather than sent
	// before the first fault (a send through the control socket takes
	// about 10 ms). Once the schedule is done, the streams finish at full
	// speed.
	chaosPace = 150 * time.Millisecond
	// chaosMaxFailed is how many sends of one stream may exit non-zero
	// (a send whose node was killed under it) before the run gives up.
	chaosMaxFailed = 40
	// chaosSendTimeout is each send's --timeout: how long it waits for the
	// acknowledgement before it reports the message queued.
	chaosSendTimeout = "5s"
	// chaosMinDuring is how many messages must be sent (exit 0) during
	// each fault, so that it is a fault under load.
	chaosMinDuring = 20
	// chaosPhaseWithin bounds each step of the schedule, and
	// chaosSettleWithin the wait for every outbox to empty at the end.
	chaosPhaseWithin  = 90 * time.Second
	chaosSettleWithin = 90 * time.Second
)

// chaosText is the text of message seq from one node to another; the
// sequence number orders a stream.
func chaosText(from, to string, seq int) string {
	return fmt.Sprintf("chaos %s>%s #%05d", from, to, seq)
}

var chaosRE = regexp.MustCompile(`^chaos (\w+)>(\w+) #(\d{5})$`)

// chaosStream is one sender → recipient stream of messages, sent one
// after the other, so the order of sending is defined.
type chaosStream struct {
	from, to int // indexes into the run's names

	mu        sync.Mutex        // guards the fields below
	ok        []int             // sequence numbers whose send exited 0, in order
	okSet     map[int]bool      // ok as a set
	delivered int               // of ok, how many said delivered (the rest said queued)
	failed    map[int]cliResult // sequence numbers whose send exited non-zero
	bad       []string          // sends that printed or exited what the contract does not allow
	took      []time.Duration   // how long each send took
}

func (s *chaosStream) counts() (ok, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ok), len(s.failed)
}

// chaosRun is what the senders share with the test.
type chaosRun struct {
	t     *testing.T
	names []string
	hosts []*netlab.Host
	dirs  []string
	begin time.Time // when the senders started

	total     atomic.Int64 // sends that exited 0, all streams
	chaosDone atomic.Bool  // the schedule has run its course: send at full speed
	stop      atomic.Bool  // the test is ending: senders stop
}

// send is one stream's sender loop, run on its own goroutine: it sends
// until the stream has chaosPerPair messages and the schedule is done.
func (c *chaosRun) send(s *chaosStream) {
	from, to := c.names[s.from], c.names[s.to]
	for seq := 1; !c.stop.Load(); seq++ {
		ok, failed := s.counts()
		if ok >= chaosPerPair && c.chaosDone.Load() {
			return
		}
		if failed > chaosMaxFailed {
			c.t.Errorf("%s→%s: %d sends failed; giving up this stream", from, to, failed)
			return
		}
		// Keep pace with the schedule; a stream that fell behind (its
		// sends waited for an unplugged peer) catches up.
		for due := c.begin.Add(time.Duration(seq) * chaosPace); time.Now().Before(due) && !c.chaosDone.Load() && !c.stop.Load(); {
			time.Sleep(min(time.Until(due), 50*time.Millisecond))
		}
		start := time.Now()
		r, err := dirCLI(c.t, c.hosts[s.from], c.dirs[s.from], from, "send", "--timeout", chaosSendTimeout, to, chaosText(from, to, seq))
		took := time.Since(start)
		s.mu.Lock()
		s.took = append(s.took, took)
		switch {
		case err != nil: // hung, and killed: its fate is unknown
			s.failed[seq] = r
			s.bad = append(s.bad, err.Error())
		case r.code == 0:
			s.ok = append(s.ok, seq)
			s.okSet[seq] = true
			switch {
			case strings.HasPrefix(r.stdout, "delivered to "+to+" ("):
				s.delivered++
			case strings.HasPrefix(r.stdout, "queued for "+to+" ("):
			default:
				s.bad = append(s.bad, fmt.Sprintf("exit 0 but neither delivered nor queued: %v", r))
			}
		default:
			// Exit 1 is allowed (the node went away under the call); the
			// message may or may not have been stored, so it is neither
			// expected nor forbidden, and the next one has a new text.
			s.failed[seq] = r
			if r.code != 1 {
				s.bad = append(s.bad, fmt.Sprintf("exit %d, want 0 (or 1 if the node was killed): %v", r.code, r))
			}
		}
		s.mu.Unlock()
		if err == nil && r.code == 0 {
			c.total.Add(1)
		} else if !c.stop.Load() {
			// Its node is down or going down: a moment before the next.
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestChaos(t *testing.T) {
	// Not parallel: it keeps both cores busy for most of a minute, which
	// would make the timing of the tests beside it meaningless.
	if testing.Short() {
		t.Skip("the chaos run takes about a minute")
	}
	lab := netlab.New(t, 3)
	names := []string{"alice", "bob", "carol"}
	nodes := startNodes(t, lab.Hosts, names...)
	waitSees(t, seeTimeout, nodes, nodes, "available")

	c := &chaosRun{t: t, names: names, hosts: lab.Hosts, begin: time.Now()}
	for _, n := range nodes {
		c.dirs = append(c.dirs, n.dataDir)
	}
	var streams []*chaosStream
	for i := range names {
		for j := range names {
			if i != j {
				streams = append(streams, &chaosStream{from: i, to: j, okSet: map[int]bool{}, failed: map[int]cliResult{}})
			}
		}
	}
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send(s)
		}()
	}
	sendersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(sendersDone)
	}()
	// However the test ends, the senders stop and are waited for before
	// the nodes are stopped (cleanups run last registered first).
	t.Cleanup(func() {
		c.stop.Store(true)
		<-sendersDone
	})

	log := func(what string) {
		t.Logf("%5.1fs %5d sent  %s", time.Since(c.begin).Seconds(), c.total.Load(), what)
	}
	// hold lets the senders work for at least d and at least n more
	// messages.
	hold := func(d time.Duration, n int64) {
		t.Helper()
		until, want := time.Now().Add(d), c.total.Load()+n
		waitFor(t, chaosPhaseWithin, func() error {
			select {
			case <-sendersDone:
				t.Fatalf("the senders stopped before the schedule ended (%d sent)", c.total.Load())
			default:
			}
			if got := c.total.Load(); got < want || time.Now().Before(until) {
				return fmt.Errorf("%d of %d messages sent", got, want)
			}
			return nil
		})
	}
	// during runs fault, holds, runs repair, and checks that messages
	// flowed in between.
	during := func(what string, fault func(), d time.Duration, repair func()) {
		t.Helper()
		log(what)
		before := c.total.Load()
		fault()
		hold(d, chaosMinDuring)
		repair()
		log(fmt.Sprintf("end of %s: %d sent meanwhile", what, c.total.Load()-before))
	}
	kill := func(i int) {
		t.Helper()
		log("SIGKILL " + nodes[i].String())
		nodes[i].Kill()
	}
	revive := func(i int) {
		t.Helper()
		nodes[i] = restart(t, nodes[i])
		log("restarted " + nodes[i].String())
	}
	crash := func(i int) {
		t.Helper()
		kill(i)
		revive(i)
	}
	drop := func(percent int) func() {
		return func() {
			t.Helper()
			for _, h := range lab.Hosts {
				if err := h.DropPercent(percent); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// The schedule: alice crashes while messages flow; carol is unplugged
	// and, cut off with her outbox full, crashes (her sends meanwhile are
	// one-shots that can only queue) and comes back once replugged (a
	// node started without a LAN listens on loopback only); bob crashes
	// on a lossy LAN.
	hold(2*time.Second, chaosMinDuring)
	crash(0)
	hold(2*time.Second, chaosMinDuring)
	carol, others := nodes[2], nodes[:2]
	during("carol unplugged", func() {
		if err := carol.host.Unplug(); err != nil {
			t.Fatal(err)
		}
		// Long enough for the others to notice: what goes to carol
		// and comes from her is queued, not merely slow.
		waitSees(t, offlineWithin, others, []*node{carol}, "offline")
		log("the others see carol offline")
		hold(time.Second, chaosMinDuring)
		ob, err := carol.outbox()
		if err != nil {
			t.Fatal(err)
		}
		queued := 0
		for _, o := range ob {
			queued += o.Count
		}
		log(fmt.Sprintf("carol has %d messages queued", queued))
		if queued == 0 {
			t.Errorf("carol has nothing queued after %v unplugged: the crash below tests less than it should", time.Since(c.begin))
		}
		kill(2)
	}, 3*time.Second, func() {
		if err := carol.host.Replug(); err != nil {
			t.Fatal(err)
		}
		log("replugged carol")
		revive(2)
	})
	hold(2*time.Second, chaosMinDuring)
	during("20% loss on every host", drop(20), 3*time.Second, func() {
		crash(1) // it comes back on a lossy LAN
		hold(3*time.Second, chaosMinDuring)
		drop(0)()
	})
	hold(2*time.Second, chaosMinDuring)
	c.chaosDone.Store(true)
	log("end of the faults; the streams finish")

	select {
	case <-sendersDone:
	case <-time.After(chaosPhaseWithin):
		t.Fatalf("the senders did not finish within %v of the end of the faults (%d sent)", chaosPhaseWithin, c.total.Load())
	}
	log("every send returned")

	// What waits goes out now that every node is up and the LAN whole.
	waitFor(t, chaosSettleWithin, func() error {
		var bad []string
		for _, n := range nodes {
			if err := n.outboxEmpty(); err != nil {
				bad = append(bad, err.Error())
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("outboxes not empty:\n%s", strings.Join(bad, "\n"))
		}
		return nil
	})
	log("every outbox is empty")

	hist := make([][]histEntry, len(nodes))
	for i, n := range nodes {
		hs, err := n.history()
		if err != nil {
			t.Fatal(err)
		}
		hist[i] = hs
	}
	got := sortChaos(t, nodes, hist)
	for _, s := range streams {
		checkStream(t, names, s, got[streamKey{s.from, s.to}])
	}
	summarise(t, names, streams, time.Since(c.begin))
}

// streamKey names a stream by the indexes of its sender and recipient.
type streamKey struct{ from, to int }

// sortChaos sorts the entries of the histories by stream: [0] is what the
// sender's history holds of the stream, [1] the recipient's, each in
// history order. It fails the test for entries no stream can have made.
func sortChaos(t *testing.T, nodes []*node, hist [][]histEntry) map[streamKey]*[2][]histEntry {
	t.Helper()
	index := map[string]int{}
	for i, n := range nodes {
		index[n.name] = i
	}
	out := map[streamKey]*[2][]histEntry{}
	var unexpected []string
	for i, hs := range hist {
		for _, h := range hs {
			m := chaosRE.FindStringSubmatch(h.Text)
			var from, to int
			var okf, okt bool
			if m != nil {
				from, okf = index[m[1]]
				to, okt = index[m[2]]
			}
			side := 0
			if !h.Outgoing {
				side = 1
			}
			switch {
			case m == nil || !okf || !okt:
				unexpected = append(unexpected, fmt.Sprintf("%s: %+v (not a message of the run)", nodes[i].name, h))
				continue
			case h.From.ID != nodes[from].id() || h.To.ID != nodes[to].id():
				unexpected = append(unexpected, fmt.Sprintf("%s: %+v (want from %.12s to %.12s)", nodes[i].name, h, nodes[from].id(), nodes[to].id()))
				continue
			case side == 0 && i != from, side == 1 && i != to:
				unexpected = append(unexpected, fmt.Sprintf("%s: %+v (outgoing %v on the wrong node)", nodes[i].name, h, h.Outgoing))
				continue
			}
			k := streamKey{from, to}
			if out[k] == nil {
				out[k] = &[2][]histEntry{}
			}
			out[k][side] = append(out[k][side], h)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("%d history entries that no send made:\n  %s", len(unexpected), firstLines(unexpected, 20))
	}
	return out
}

// chaosSeq is the sequence number in a message of the run.
func chaosSeq(h histEntry) int {
	m := chaosRE.FindStringSubmatch(h.Text)
	n, _ := strconv.Atoi(m[3])
	return n
}

// Kinds of problem checkStream reports.
const (
	probMissing   = "sent (exit 0) but missing"
	probDuplicate = "duplicated"
	probNotSent   = "never sent"
	probHalfway   = "on one side only"
	probIDs       = "with different ids"
	probState     = "not delivered"
	probOrder     = "out of order"
	probContract  = "sends against the contract"
)

// checkStream reports, as test errors, what problems finds in one stream.
func checkStream(t *testing.T, names []string, s *chaosStream, got *[2][]histEntry) {
	t.Helper()
	probs, failed := s.problems(names, got)
	name := names[s.from] + "→" + names[s.to]
	for _, kind := range []string{probMissing, probDuplicate, probNotSent, probHalfway, probIDs, probState, probOrder, probContract} {
		if list := probs[kind]; len(list) > 0 {
			t.Errorf("%s: %d messages %s:\n  %s", name, len(list), kind, firstLines(list, 20))
		}
	}
	if len(failed) > 0 {
		t.Logf("%s: %d sends failed:\n  %s", name, len(failed), firstLines(failed, 10))
	}
}

// problems compares what the histories hold of the stream (got, as
// sortChaos returns it) with what its sends were told, and returns the
// problems by kind, and a note on each failed send.
func (s *chaosStream) problems(names []string, got *[2][]histEntry) (probs map[string][]string, failedNotes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if got == nil {
		got = &[2][]histEntry{}
	}
	probs = map[string][]string{}
	add := func(kind, format string, a ...any) { probs[kind] = append(probs[kind], fmt.Sprintf(format, a...)) }
	who := [2]string{names[s.from], names[s.to]}
	count := [2]map[int]int{{}, {}}
	ids := [2]map[int]string{{}, {}}
	for side := range 2 {
		for _, h := range got[side] {
			count[side][chaosSeq(h)]++
			ids[side][chaosSeq(h)] = h.ID
		}
	}
	for side := range 2 {
		for _, seq := range s.ok {
			switch n := count[side][seq]; n {
			case 1:
			case 0:
				add(probMissing, "#%05d is not in %s's history", seq, who[side])
			default:
				add(probDuplicate, "#%05d is %d times in %s's history", seq, n, who[side])
			}
		}
		for seq, n := range count[side] {
			if s.okSet[seq] {
				continue
			}
			r, failed := s.failed[seq]
			switch {
			case !failed:
				add(probNotSent, "#%05d in %s's history was never sent", seq, who[side])
			case n > 1:
				add(probDuplicate, "#%05d (its send exited %d) is %d times in %s's history", seq, r.code, n, who[side])
			}
		}
		for i := 1; i < len(got[side]); i++ {
			if a, b := chaosSeq(got[side][i-1]), chaosSeq(got[side][i]); b <= a {
				add(probOrder, "%s's history has #%05d after #%05d", who[side], b, a)
			}
		}
	}
	// A send that failed may have stored its message; if it did, the
	// message must have gone through like any other.
	for seq, r := range s.failed {
		if (count[0][seq] > 0) != (count[1][seq] > 0) {
			add(probHalfway, "#%05d (its send exited %d: %s) is %d times in the sender's history, %d in the recipient's",
				seq, r.code, strings.TrimSpace(r.stderr), count[0][seq], count[1][seq])
		}
		failedNotes = append(failedNotes, fmt.Sprintf("#%05d exit %d: %s (%d times in the sender's history, %d in the recipient's)",
			seq, r.code, strings.TrimSpace(r.stderr), count[0][seq], count[1][seq]))
	}
	for seq, id := range ids[0] {
		if other, ok := ids[1][seq]; ok && other != id {
			add(probIDs, "#%05d has id %s at the sender, %s at the recipient", seq, id, other)
		}
	}
	for _, h := range got[0] {
		if h.State != "delivered" {
			add(probState, "%q is %s at the sender, want delivered", h.Text, h.State)
		}
	}
	if len(s.bad) > 0 {
		probs[probContract] = slices.Clone(s.bad)
	}
	for _, list := range probs {
		slices.Sort(list)
	}
	slices.Sort(failedNotes)
	return probs, failedNotes
}

// TestChaosCheckerFindsProblems: the chaos run's checker finds each kind
// of problem it looks for, and nothing in a clean run, so a passing chaos
// run means something.
func TestChaosCheckerFindsProblems(t *testing.T) {
	t.Parallel()
	names := []string{"alice", "bob"}
	// msg is message seq of the stream as one side's history has it.
	msg := func(seq int, outgoing bool, id, state string) histEntry {
		return histEntry{ID: id, Text: chaosText("alice", "bob", seq), Outgoing: outgoing, State: state}
	}
	// side builds one side's history of messages seqs, in that order.
	side := func(outgoing bool, seqs ...int) []histEntry {
		var out []histEntry
		for _, seq := range seqs {
			out = append(out, msg(seq, outgoing, fmt.Sprint("id", seq), "delivered"))
		}
		return out
	}
	sender := func(seqs ...int) []histEntry { return side(true, seqs...) }
	recipient := func(seqs ...int) []histEntry { return side(false, seqs...) }
	for _, tc := range []struct {
		name      string
		sender    []histEntry
		recipient []histEntry
		bad       []string // sends against the contract
		want      []string // kinds of problem, sorted
	}{
		{"clean", sender(1, 2, 3, 4), recipient(1, 2, 3, 4), nil, nil},
		{"failed send stored and delivered", sender(1, 2, 3, 4, 5), recipient(1, 2, 3, 4, 5), nil, nil},
		{"missing at the recipient", sender(1, 2, 3, 4), recipient(1, 2, 4), nil, []string{probMissing}},
		{"missing at the sender", sender(1, 3, 4), recipient(1, 2, 3, 4), nil, []string{probMissing}},
		{"duplicate", sender(1, 2, 3, 4), append(recipient(1, 2, 3, 4), recipient(4)...), nil, []string{probDuplicate, probOrder}},
		{"failed send duplicated", sender(1, 2, 3, 4, 5), recipient(1, 2, 3, 4, 5, 5), nil, []string{probDuplicate, probOrder}},
		{"out of order", sender(1, 2, 3, 4), recipient(1, 3, 2, 4), nil, []string{probOrder}},
		{"never sent", sender(1, 2, 3, 4), recipient(1, 2, 3, 4, 9), nil, []string{probNotSent}},
		{"failed send on one side", sender(1, 2, 3, 4, 5), recipient(1, 2, 3, 4), nil, []string{probHalfway}},
		{"different ids", sender(1, 2, 3, 4), append(recipient(1, 2, 3), msg(4, false, "other", "delivered")), nil, []string{probIDs}},
		{"still queued", append(sender(1, 2, 3), msg(4, true, "id4", "queued")), recipient(1, 2, 3, 4), nil, []string{probState}},
		{"against the contract", sender(1, 2, 3, 4), recipient(1, 2, 3, 4), []string{"exit 2"}, []string{probContract}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &chaosStream{from: 0, to: 1, ok: []int{1, 2, 3, 4}, okSet: map[int]bool{1: true, 2: true, 3: true, 4: true},
				failed: map[int]cliResult{5: {code: 1, stderr: "lanchat: control socket: EOF"}}, bad: tc.bad}
			probs, _ := s.problems(names, &[2][]histEntry{tc.sender, tc.recipient})
			var kinds []string
			for kind := range probs {
				kinds = append(kinds, kind)
			}
			slices.Sort(kinds)
			slices.Sort(tc.want)
			if !slices.Equal(kinds, tc.want) {
				t.Errorf("problems %q, want kinds %q", probs, tc.want)
			}
		})
	}
}

// summarise logs what the run did and checks it did enough.
func summarise(t *testing.T, names []string, streams []*chaosStream, took time.Duration) {
	t.Helper()
	var all []time.Duration
	okTotal, failedTotal := 0, 0
	for _, s := range streams {
		s.mu.Lock()
		okTotal += len(s.ok)
		failedTotal += len(s.failed)
		t.Logf("%s→%s: %d sent (%d delivered at once, %d queued), %d failed",
			names[s.from], names[s.to], len(s.ok), s.delivered, len(s.ok)-s.delivered, len(s.failed))
		all = append(all, s.took...)
		s.mu.Unlock()
	}
	slices.Sort(all)
	if len(all) > 0 {
		t.Logf("%d messages sent, %d sends failed, in %v; a send took %v (median), %v (99th percentile), %v (longest)",
			okTotal, failedTotal, took.Round(time.Second), all[len(all)/2].Round(time.Millisecond),
			all[len(all)*99/100].Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond))
	}
	if want := chaosPerPair * len(streams); okTotal < want {
		t.Errorf("%d messages sent, want at least %d", okTotal, want)
	}
}
