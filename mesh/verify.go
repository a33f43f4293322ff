package mesh

import (
	"context"
	"errors"
	mathrand "math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Verification timing: the first dial of a new run waits a random part of
// spreadOver(N), so the N−1 members that hear of a new node in the same
// gossip round do not all dial it in the same fraction of a second (see
// spread.go); a failed dial is retried after verifyRetryDelay·2^k for k
// failures before, drawn in [d/2, d), up to the table's maxVerifyTries.
// At most verifyDials are in flight at once. The loop sleeps until the
// earliest due dial, not on a ticker: an idle node has nothing to verify,
// and a wake-up a tenth of a second was a tenth of its idle CPU.
// A run verified meanwhile by another stream (Dial verifies too) is not
// dialled: toVerify is asked again when the dial is due.
const (
	verifyRetryDelay = 500 * time.Millisecond
	verifyDials      = 4
)

// verifyLoop proves, for every peer that joins, that whoever gossips under
// its id holds its key: gossip claims are only hints until then.
func (m *Mesh) verifyLoop(ctx context.Context) {
	type pending struct {
		member   string
		due      time.Time
		tries    int // failed dials of this run
		inFlight bool
	}
	type result struct {
		id, member string
		addr       netip.AddrPort
		err        error
		limited    bool
	}
	waiting := make(map[string]*pending) // by peer id; at most one per peer in the table
	results := make(chan result, verifyDials)
	var dials sync.WaitGroup
	defer dials.Wait()
	inFlight := 0
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	queued := func(id string) {
		m.mu.Lock()
		member, _, due := m.table.toVerify(id)
		m.mu.Unlock()
		if !due {
			return
		}
		if p := waiting[id]; p != nil && p.member == member {
			return // scheduled already
		}
		spread := spreadOver(int(m.members.Load()))
		waiting[id] = &pending{member: member, due: time.Now().Add(jitter(mathrand.Float64, spread))}
	}
	answered := func(r result) {
		inFlight--
		p := waiting[r.id]
		if p == nil || p.member != r.member {
			return
		}
		p.inFlight = false
		switch {
		case r.limited:
			// Not a failed try: the address is dialled too often
			// (many members name it). Ask again later.
			p.due = time.Now().Add(verifyRetryDelay)
			return
		case r.err == nil:
			delete(waiting, r.id)
			m.reportVerified(r.member, r.addr)
			return
		case errors.Is(r.err, ErrWrongPeer):
			delete(waiting, r.id)
			m.log.Warn("refusing to trust a peer: its address answers with another key", "peer", ShortID(r.id), "addr", r.addr, "err", r.err)
			return
		}
		m.mu.Lock()
		again := m.table.retryVerify(r.id, r.member)
		m.mu.Unlock()
		if !again {
			delete(waiting, r.id)
			return
		}
		d := verifyRetryDelay << min(p.tries, 6)
		p.tries++
		p.due = time.Now().Add(d/2 + jitter(mathrand.Float64, d/2))
	}
	// dispatch dials what is due, and returns when the next not in
	// flight is due (zero: none, or no room until a dial ends).
	dispatch := func() time.Time {
		now := time.Now()
		var next time.Time
		for id, p := range waiting {
			if p.inFlight {
				continue
			}
			if now.Before(p.due) {
				if next.IsZero() || p.due.Before(next) {
					next = p.due
				}
				continue
			}
			if inFlight >= verifyDials {
				continue // a result wakes the loop
			}
			m.mu.Lock()
			member, addr, due := m.table.toVerify(id)
			m.mu.Unlock()
			if !due || member != p.member {
				// Verified meanwhile (another stream), gone, or a new
				// run, which its own news queues.
				delete(waiting, id)
				if due {
					m.queueVerify(id)
				}
				continue
			}
			p.inFlight = true
			inFlight++
			dials.Go(func() {
				r := result{id: id, member: member, addr: addr}
				if !m.dials.allow(addr.Addr()) {
					r.limited = true
				} else if s, err := m.dialer.DialAddr(ctx, addr.String(), id, ALPNPing); err == nil {
					s.Close()
				} else {
					r.err = err
				}
				results <- r
			})
		}
		return next
	}
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-m.verifyCh:
			queued(id)
		case r := <-results:
			answered(r)
		case <-wake.C:
		}
		wake.Stop()
		if next := dispatch(); !next.IsZero() {
			wake.Reset(time.Until(next))
		}
	}
}

// queueVerify never blocks: processEvents must keep draining memberlist's
// news, and verifyLoop, which reads verifyCh, requeues its own retries. A
// peer dropped here is verified by its next Dial, or queued again by its
// next update.
func (m *Mesh) queueVerify(id string) {
	select {
	case m.verifyCh <- id:
	default:
	}
}

// reportVerified tells the peer table that a handshake at addr proved the
// key of run member. It goes through the event queue rather than setting
// Verified here, so that processEvents stays the only writer of what
// subscribers see, and the Verified event comes out in order with the
// membership events around it (never, say, after a later address change
// that made the peer unverified again).
func (m *Mesh) reportVerified(member string, addr netip.AddrPort) {
	m.q.push(memberEvent{kind: evVerified, name: member, at: addr})
}
