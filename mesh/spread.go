package mesh

import "time"

// News of one peer (it joined, gossip calls it dead, gossip says it is
// back) reaches every member within a gossip round or two, and each of
// them answered it with a handshake aimed at that peer at once: N−1
// handshakes at one node in the same fraction of a second, and, when the
// node was too slow to complete them all (it is starting, or starved of
// CPU), N−1 more for each failure. At 50 nodes on two cores that kept
// new nodes offline for minutes (BENCHMARKS.md). So each member waits a
// random part of spreadOver(N) before it acts on such news, which puts
// about one handshake every spreadPerMember at the peer whatever N, and
// the checks of one run that keep failing back off (checkSchedule).
const (
	spreadPerMember = 50 * time.Millisecond
	spreadMax       = 5 * time.Second
	// checkTick: the least wait between two looks of holdLoop for checks
	// that are due (it sleeps until the next one is).
	checkTick = 250 * time.Millisecond
	// checkBackoffMax caps the wait between two checks of a run that
	// answered none; checkForget is how long a run off the list (lost,
	// or taken back by memberlist) keeps its failures, so that a run
	// flapping between dead and alive in gossip is not asked afresh at
	// each flap.
	checkBackoffMax = 16 * time.Second
	checkForget     = time.Minute
)

// spreadOver is the window over which members spread their handshakes at
// one peer, for members live members (this node included).
func spreadOver(members int) time.Duration {
	return min(time.Duration(max(members, 1))*spreadPerMember, spreadMax)
}

// Spread is spreadOver for other packages that act on news of one peer
// (the chat service's catch-up when it meets one): the window over which
// the members, members of them, should spread what they aim at it.
func Spread(members int) time.Duration { return spreadOver(members) }

// jitter draws a duration in [0, d).
func jitter(rnd func() float64, d time.Duration) time.Duration {
	return time.Duration(rnd() * float64(d))
}

// checkSchedule decides when holdLoop asks each run the peer table lists
// to be checked (heldRuns), as a state machine with no clock or I/O of its
// own:
//
//   - A run newly listed is asked after a random part of spreadOver(N),
//     so the members that heard the same accusation do not all ask at
//     once. A crashed peer refuses at once, so a crash is shown that
//     much later at most (2.5 s at 50 nodes).
//   - A run that answered (held online against gossip) is asked again
//     every max(holdInterval, spreadOver(N)), drawn in [d/2, d).
//   - A run that answered nothing is asked again after holdInterval·2^k
//     for k failures in a row, capped at checkBackoffMax (and not sooner
//     than the spread), drawn in [d/2, d): a returning run whose check
//     fails waits for gossip with fewer and fewer questions, instead of
//     being asked every second by every member while it is slow.
//   - Failures are remembered for checkForget after the run leaves the
//     list, so a run accused, taken back and accused again keeps its
//     backoff.
type checkSchedule struct {
	rand func() float64
	runs map[string]*checkState // by member name
}

type checkState struct {
	due      time.Time
	last     time.Time // the last check's end, or when first listed
	fails    int       // checks in a row that found nobody
	inFlight bool
	listed   bool // listed by the table at the last look
}

func newCheckSchedule(rnd func() float64) *checkSchedule {
	return &checkSchedule{rand: rnd, runs: make(map[string]*checkState)}
}

// due takes the runs the table lists now and returns those to ask now, at
// most room, marking them in flight; done must follow for each.
func (s *checkSchedule) due(runs []heldRun, members int, now time.Time, room int) []heldRun {
	spread := spreadOver(members)
	listed := make(map[string]bool, len(runs))
	var out []heldRun
	for _, r := range runs {
		listed[r.member] = true
		c := s.runs[r.member]
		switch {
		case c == nil:
			c = &checkState{due: now.Add(jitter(s.rand, spread)), last: now}
			s.runs[r.member] = c
		case !c.listed:
			// Listed again: not before the backoff of its failures.
			if at := now.Add(jitter(s.rand, spread)); at.After(c.due) {
				c.due = at
			}
		}
		c.listed = true
		if c.inFlight || now.Before(c.due) || len(out) >= room {
			continue
		}
		c.inFlight = true
		out = append(out, r)
	}
	for name, c := range s.runs {
		if listed[name] || c.inFlight {
			continue
		}
		c.listed = false
		if c.fails == 0 || now.Sub(c.last) > checkForget {
			delete(s.runs, name)
		}
	}
	return out
}

// next says when the earliest check not in flight is due, or when a run
// off the list is to be forgotten (so that due prunes it), with ok false
// when nothing is scheduled; room false leaves out the due checks that
// wait for a check in flight to end (its answer wakes holdLoop).
func (s *checkSchedule) next(room bool) (at time.Time, ok bool) {
	for _, c := range s.runs {
		var t time.Time
		switch {
		case c.inFlight:
			continue
		case c.listed:
			t = c.due
		default:
			t = c.last.Add(checkForget)
		}
		if !room && c.listed {
			continue
		}
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// done records the outcome of a check of member handed out by due.
func (s *checkSchedule) done(member string, ok bool, members int, now time.Time) {
	c := s.runs[member]
	if c == nil || !c.inFlight {
		return
	}
	c.inFlight, c.last = false, now
	d := max(holdInterval, spreadOver(members))
	if ok {
		c.fails = 0
	} else {
		c.fails++
		b := holdInterval
		for i := 0; i < c.fails && b < checkBackoffMax; i++ {
			b *= 2
		}
		d = max(d, min(b, checkBackoffMax))
	}
	c.due = now.Add(d/2 + jitter(s.rand, d/2))
}
