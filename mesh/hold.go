package mesh

import (
	"context"
	"errors"
	mathrand "math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Gossip is not authenticated without a network key, so one forged dead
// message makes every memberlist call a live member dead, and its
// refutation cannot beat an incarnation of 2³²−1 (it wraps to 0). This
// node does not take gossip's word against what it can check itself: a
// verified run that gossip calls dead is asked by a TLS handshake expecting
// its key (on the ping protocol) before it is shown offline. If it answers
// it is held online, asked again every holdInterval, and dialled back into
// memberlist by the reconnector (which can only succeed once memberlist has
// forgotten the dead member, GossipToTheDeadTime later). A crashed peer
// refuses the handshake at once, so a crash is still shown as soon as
// memberlist notices it; an unplugged one after askWindow more. Packet
// loss is not an answer: a check tries several handshakes (ask), and a
// held run is lost only after heldMisses checks in a row found nobody.
//
// The accused side: memberlist refutes by gossiping a higher incarnation,
// which after an accusation at 2³²−1 is 0, and a member of incarnation 0
// is never taken in, not even by a memberlist that has forgotten the dead
// one. So after each refutation (memberlist says so only in its log) the
// node announces itself once more (UpdateNode: incarnation 1 after a wrap),
// at most once per refuteGap, and the others' reconnect dials then find it
// joinable.
const (
	refuteGap = 2 * time.Second
	// repullGap: a stranger who keeps the caps full keeps the refusals
	// coming; the pulls they cause (a whole member list each) stay rare.
	repullGap    = 5 * time.Second
	holdInterval = time.Second
	holdTimeout  = 2 * time.Second
	// A check is a window of askWindow in which up to askTries
	// handshakes start, one every askStagger, the first answer deciding.
	// At 20 % loss each way one handshake misses 2 s in about one try of
	// seven (a SYN or its answer lost twice waits for the 3 s
	// retransmit); three fresh connections within 4 s all miss it about
	// once in five hundred checks. A crashed peer's port refuses at
	// once, which ends the check then; an unplugged one costs askWindow.
	askWindow  = 4 * time.Second
	askStagger = time.Second
	askTries   = 3
	// heldMisses: checks in a row that a run held online against gossip
	// may miss before it is lost. It is checked every second for as long
	// as memberlist calls it dead (15 s after a forged dead message), so
	// one silence in five hundred would otherwise show it lost now and
	// then at 20 % loss.
	heldMisses = 2
	holdDials  = 4 // handshakes at once (reach.go)
	// checkDials: checks at once. Each waits up to askWindow for a
	// silent peer, so a split of 25 (25 runs accused at once) took 25 s
	// to show at 4; the checks aim at different peers, and each costs
	// this node a goroutine and a few SYNs.
	checkDials = 16
)

// ask checks by handshake that id answers at at (see askWindow): ok if
// it does; refused if the port refused or another key answered, which
// no retry would change. A try whose TCP connection is up still gets a
// fresh one beside it a stagger later: under loss its handshake's
// packets wait on TCP's retransmission as a SYN does, and giving it a
// second of grace instead (tried for the 50-node storm) left two tries
// a check and showed a live peer lost at 20 % loss
// (TestLossyHeldPresenceNeverOffline). What bounds the handshakes aimed
// at a slow peer is the schedule (spread.go), not fewer tries a check.
func (m *Mesh) ask(ctx context.Context, at netip.AddrPort, id string) (ok, refused bool) {
	ctx, cancel := context.WithTimeout(ctx, askWindow)
	var tries sync.WaitGroup
	defer func() { cancel(); tries.Wait() }()
	results := make(chan error, askTries) // never blocks a try
	stagger := time.NewTicker(askStagger)
	defer stagger.Stop()
	started, pending := 0, 0
	try := func() {
		started++
		pending++
		tries.Go(func() {
			s, err := m.dialer.DialAddr(ctx, at.String(), id, ALPNPing)
			if err == nil {
				s.Close()
			}
			results <- err
		})
	}
	try()
	for pending > 0 {
		select {
		case err := <-results:
			pending--
			switch {
			case err == nil:
				return true, false
			case checkRefused(err):
				return false, true
			case started < askTries && ctx.Err() == nil:
				try() // failed early (say, no route yet): the next now
			}
		case <-stagger.C:
			if started < askTries {
				try()
			}
		}
	}
	return false, false
}

// checkRefused says whether a failed check is an answer: nothing listens
// at the peer's port any more (a crash, or a clean exit whose goodbye was
// lost), or another key answers there. Anything else — a timeout, above
// all — may be packet loss, and is asked again.
func checkRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, ErrWrongPeer)
}

// queueCheck wakes holdLoop to ask a run gossip called dead. It never
// blocks: the peer table remembers what is to be checked.
func (m *Mesh) queueCheck(string) {
	select {
	case m.checkWake <- struct{}{}:
	default:
	}
}

// holdLoop asks, by handshake, the runs gossip called dead and those held
// online against it, each when checkSchedule says; and pulls the
// membership again from a verified peer when the gate refused members for
// a cap, once there is room again (the refused ones are not gossiped again
// until they change).
func (m *Mesh) holdLoop(ctx context.Context) {
	// Timers, not a ticker: an idle node has nothing to check, and waking
	// it a few times a second to find that out was a share of its idle
	// CPU. checkDue fires when the schedule's next check is due; repullDue
	// when a pull of the membership may be made (repullGap after the last).
	checkDue := time.NewTimer(time.Hour)
	checkDue.Stop()
	defer checkDue.Stop()
	repullDue := time.NewTimer(time.Hour)
	repullDue.Stop()
	defer repullDue.Stop()
	repullArmed := false
	var lastBump, lastRepull time.Time
	// bumpDue fires when a re-announcement held back by refuteGap is due;
	// armed says it is set, so that a flood of refutations sets one timer.
	bumpDue := time.NewTimer(time.Hour)
	bumpDue.Stop()
	armed := false
	var bumps sync.WaitGroup // re-announcements, which wait for their broadcast, and repulls
	defer bumps.Wait()
	bump := func() {
		armed, lastBump = false, time.Now()
		m.mu.Lock()
		ml := m.ml
		m.mu.Unlock()
		bumps.Go(func() {
			if err := ml.UpdateNode(holdTimeout); err != nil {
				m.log.Debug("re-announce after a refutation", "err", err)
			}
		})
	}
	repull := func() {
		repullArmed = false
		addr, ok, later := m.repullIfRefused()
		if later {
			// Looked at again every checkTick, not every holdInterval:
			// with a small cap each pull admits few members, and a
			// second a round added up to a slow convergence. Only
			// while a refusal waits, so an idle node is not woken.
			repullArmed = true
			repullDue.Reset(checkTick)
			return
		}
		if !ok {
			return
		}
		lastRepull = time.Now()
		m.mu.Lock()
		ml := m.ml
		m.mu.Unlock()
		// Not through the join queue: it skips live members, and this
		// one is live on purpose.
		bumps.Go(func() {
			if _, err := ml.Join([]string{addr}); err != nil {
				m.log.Debug("pull the membership again", "addr", addr, "err", err)
			}
		})
	}
	sched := newCheckSchedule(mathrand.Float64)
	type answer struct {
		member string
		ok     bool
	}
	answers := make(chan answer, checkDials) // one per check in flight
	var checks sync.WaitGroup
	defer checks.Wait()
	inFlight := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.gate.refusedWake:
			if !repullArmed {
				repullArmed = true
				repullDue.Reset(max(time.Until(lastRepull.Add(repullGap)), 0))
			}
			continue
		case <-repullDue.C:
			repull()
			continue
		case <-checkDue.C:
		case <-m.checkWake:
		case a := <-answers:
			inFlight--
			sched.done(a.member, a.ok, int(m.members.Load()), time.Now())
		case <-m.refuteWake:
			if wait := refuteGap - time.Since(lastBump); wait > 0 {
				if !armed {
					bumpDue.Reset(wait)
					armed = true
				}
			} else if !armed {
				bump()
			}
			continue
		case <-bumpDue.C:
			bump()
			continue
		}
		m.mu.Lock()
		runs := m.table.heldRuns()
		m.mu.Unlock()
		now := time.Now()
		for _, r := range sched.due(runs, int(m.members.Load()), now, checkDials-inFlight) {
			inFlight++
			checks.Go(func() {
				ok, refused := m.ask(ctx, r.at, r.id)
				if ctx.Err() != nil {
					answers <- answer{member: r.member}
					return
				}
				m.q.push(memberEvent{kind: evChecked, name: r.member, at: r.at, ok: ok, refused: refused})
				answers <- answer{member: r.member, ok: ok}
			})
		}
		checkDue.Stop()
		if next, ok := sched.next(inFlight < checkDials); ok {
			// Not sooner than checkTick: a run the table still lists
			// a moment after its check ended (its answer is an event
			// yet to be applied) is not looked at in a busy loop.
			checkDue.Reset(max(next.Sub(now), checkTick))
		}
	}
}

// answeredDial tells the peer table that a handshake made for another
// reason (a reconnect dial) found peer id at tls: for a run being checked,
// held or returning at that address it is the answer a check would have
// got, so it need not wait for, nor cost, a check of its own.
func (m *Mesh) answeredDial(id string, tls netip.AddrPort) {
	m.mu.Lock()
	e := m.table.peers[id]
	var member string
	if e != nil && netip.AddrPortFrom(e.Addr, e.TLSPort) == tls && (e.alive && (e.held || e.checking) || !e.alive && e.returning != nil) {
		member = e.member
	}
	m.mu.Unlock()
	if member != "" {
		m.q.push(memberEvent{kind: evChecked, name: member, at: tls, ok: true})
	}
}

// repullIfRefused joins a random verified live peer (a push-pull of its
// whole membership) when members were refused for a cap and the
// unverified ones have fallen to half the cap: it says whether to, and
// the gossip address to join, or later when it is not yet time (too many
// unverified still).
func (m *Mesh) repullIfRefused() (addr string, ok, later bool) {
	refused, unverified := m.gate.takeRefused()
	if !refused {
		return "", false, false
	}
	if unverified > m.cfg.MaxUnverified/2 {
		m.gate.mu.Lock()
		m.gate.refusedCap = true // not yet: the caller asks again
		m.gate.mu.Unlock()
		return "", false, true
	}
	m.mu.Lock()
	var picks []string
	for _, e := range m.table.peers {
		if e.alive && e.Verified && !e.held {
			picks = append(picks, netip.AddrPortFrom(e.Addr, e.GossipPort).String())
		}
	}
	m.mu.Unlock()
	if len(picks) == 0 {
		return "", false, false
	}
	return picks[mathrand.IntN(len(picks))], true, false
}
