package mesh

import (
	"net/netip"
	"time"
)

// reconnector decides when to dial peers lost without a goodbye, as a
// state machine with no lock, goroutine, clock or I/O of its own (like
// peerTable): losses, returns and the outcome of each dial go in, the next
// dial to make comes out. Mesh holds it under its mutex; reconnectLoop
// makes the dials.
//
// Its rules, after Serf's reconnect (which re-dials one random failed
// member every 30 s and forgets it after ReconnectTimeout), but per peer:
//
//   - A peer's dials back off exponentially, base·2^tries up to maxDelay,
//     each delay drawn in [d/2, d) (jitter, so the nodes that lost the
//     same peer at the same moment do not dial it in step).
//   - The whole node makes at most one dial per gap, whatever the number
//     of lost peers, and at most maxInFlight at once.
//   - A peer lost longer than horizon is forgotten; so is its address
//     once a dial there met another identity (retire).
//   - Seeds (Join addresses, no id) are dialled alike while none of them is
//     alive, and never forgotten: the user named them.
type reconnector struct {
	cfg      reconnectConfig
	rand     func() float64       // in [0, 1); the jitter
	peers    map[string]*lostPeer // by peer id, or seedKey(addr) for a seed
	inFlight int                  // dials handed out and not yet done
	nextSlot time.Time            // the earliest time of the node's next dial
	// spread widens a lost peer's first delay by a random part of it
	// (spreadOver of the members, set by reconnectLoop): every member
	// loses the same peer in the same gossip round, and its first dials
	// would otherwise all come within base/2.
	spread time.Duration
}

// reconnectConfig is the schedule's parameters.
type reconnectConfig struct {
	base, maxDelay time.Duration // a peer's first delay, and the cap of its delays
	gap            time.Duration // between two dials of the node
	horizon        time.Duration // a lost peer is forgotten after this
	maxInFlight    int           // dials at once
}

// lostPeer is one peer (or seed) to dial again.
type lostPeer struct {
	id       string         // peer id; "" for a seed
	gossip   string         // host:port where to join it
	tls      netip.AddrPort // where to prove its identity first; invalid for a seed
	lostAt   time.Time
	tries    int // failed dials so far
	due      time.Time
	inFlight bool
}

// dialPlan is one dial to make: a TLS probe of id at tls (skipped for a
// seed), then a memberlist join of gossip.
type dialPlan struct {
	key    string
	id     string
	gossip string
	tls    netip.AddrPort
}

// dialOutcome is what a dial found.
type dialOutcome int

const (
	dialFailed   dialOutcome = iota // nobody answered: back off
	dialReached                     // the peer answered; the join will bring it back
	dialWrongKey                    // another identity holds the address: retire it
)

func newReconnector(cfg reconnectConfig, rnd func() float64) *reconnector {
	return &reconnector{cfg: cfg, rand: rnd, peers: make(map[string]*lostPeer)}
}

func seedKey(addr string) string { return "seed " + addr }

// lost starts dialling peer id, gone from gossip and tls at now. A peer
// already being dialled keeps its schedule (and its time of loss, from
// which the horizon counts).
func (r *reconnector) lost(id, gossip string, tls netip.AddrPort, now time.Time) {
	if p := r.peers[id]; p != nil {
		p.gossip, p.tls = gossip, tls
		return
	}
	first := r.delay(0)
	if r.spread > 0 {
		first += time.Duration(r.rand() * float64(r.spread))
	}
	r.peers[id] = &lostPeer{id: id, gossip: gossip, tls: tls, lostAt: now, due: now.Add(first)}
}

// seed starts dialling a Join address (no-op if it is being dialled).
func (r *reconnector) seed(addr string, now time.Time) {
	k := seedKey(addr)
	if r.peers[k] == nil {
		r.peers[k] = &lostPeer{gossip: addr, lostAt: now, due: now.Add(r.delay(0))}
	}
}

// found stops dialling key: the peer is back, said goodbye, or (a seed)
// one of the seeds is alive. A dial in flight still reports done.
func (r *reconnector) found(key string) { delete(r.peers, key) }

// delay is the wait after tries failed dials, jittered.
func (r *reconnector) delay(tries int) time.Duration {
	d := r.cfg.base
	for i := 0; i < tries && d < r.cfg.maxDelay; i++ {
		d *= 2
	}
	d = min(d, r.cfg.maxDelay)
	return d/2 + time.Duration(r.rand()*float64(d/2))
}

// next returns the dial to make at now, if one is due and the node's
// budget allows it, and forgets peers past the horizon.
func (r *reconnector) next(now time.Time) (dialPlan, bool) {
	var pick *lostPeer
	var key string
	for k, p := range r.peers {
		if p.id != "" && now.Sub(p.lostAt) > r.cfg.horizon {
			delete(r.peers, k)
			continue
		}
		if p.inFlight || now.Before(p.due) {
			continue
		}
		if pick == nil || p.due.Before(pick.due) || (p.due.Equal(pick.due) && k < key) {
			pick, key = p, k
		}
	}
	if pick == nil || now.Before(r.nextSlot) || r.inFlight >= r.cfg.maxInFlight {
		return dialPlan{}, false
	}
	pick.inFlight = true
	r.inFlight++
	r.nextSlot = now.Add(r.cfg.gap)
	return dialPlan{key: key, id: pick.id, gossip: pick.gossip, tls: pick.tls}, true
}

// wait is how long after now next may have something to do; ok false when
// nothing is scheduled at all, or nothing can be until a dial is done.
func (r *reconnector) wait(now time.Time) (time.Duration, bool) {
	if r.inFlight >= r.cfg.maxInFlight {
		return 0, false // done comes first
	}
	var first time.Time
	for _, p := range r.peers {
		if p.inFlight {
			continue
		}
		due := p.due
		if p.id != "" {
			if h := p.lostAt.Add(r.cfg.horizon); h.Before(due) {
				due = h
			}
		}
		if first.IsZero() || due.Before(first) {
			first = due
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(first.Sub(now), r.nextSlot.Sub(now), 0), true
}

// done records the outcome of the dial plan handed out by next.
func (r *reconnector) done(plan dialPlan, out dialOutcome, now time.Time) {
	r.inFlight--
	p := r.peers[plan.key]
	if p == nil || !p.inFlight {
		return // found (or forgotten) meanwhile
	}
	p.inFlight = false
	switch out {
	case dialWrongKey:
		delete(r.peers, plan.key)
		return
	case dialReached:
		// The join should bring the peer back, and found end this; if the
		// peer's memberlist does not answer, it is tried again like a failure.
	}
	p.tries++
	p.due = now.Add(r.delay(p.tries))
}
