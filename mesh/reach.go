package mesh

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Partition-aware presence. memberlist keeps a member alive as long as
// somebody reaches it: when this node's direct probe of a member gets no
// answer, it asks other members to probe it (indirect pings), and an
// indirect ack is enough, so no suspicion ever starts. That is exactly the
// case "others see it, this node cannot reach it" (a firewall or a broken
// link between two hosts), and memberlist says nothing about it. What it
// does say: the ping delegate is told of every direct ack, and of nothing
// else (neither indirect acks nor the TCP fallback).
//
// So a live member, verified or past its verification tries, with no direct ack for longer than memberlist
// needs to probe it twice over (each member is probed once per round of
// all members, in an order shuffled each round) is asked by a TLS
// handshake expecting its key, as the hold logic does. If that fails too,
// the peer is shown unreachable from here, with the number of other live
// members that keep it alive; a later direct ack or handshake shows it
// reachable again. A peer whose UDP is filtered but whose TLS port answers
// is reachable (messages go over TLS; doctor tells the rest).
//
// The loop looks every reachTick while a peer is unreachable (its direct
// acks show it back within that), and otherwise only when the next watched
// peer may have been quiet long enough, at least every reachIdle: an idle
// node is not woken every second to find every peer answering.
const (
	reachTick      = time.Second
	reachIdle      = 5 * time.Second
	reachRecheck   = 5 * time.Second // an unreachable peer is asked again this often
	reachSlackProb = 3               // probe intervals added to two rounds
)

// ackTimes holds when each member last answered a direct probe. It has
// its own lock: memberlist's probe goroutine writes it.
type ackTimes struct {
	mu sync.Mutex
	at map[string]time.Time // by member name; only members memberlist probes, pruned by reachLoop
}

func (a *ackTimes) last(member string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at[member]
}

// keep forgets the members not in live.
func (a *ackTimes) keep(live map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name := range a.at {
		if !live[name] {
			delete(a.at, name)
		}
	}
}

// pingDelegate is memberlist's ping delegate: it records direct acks.
type pingDelegate struct{ r *ackTimes }

func (d *pingDelegate) AckPayload() []byte { return nil }

func (d *pingDelegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	d.r.mu.Lock()
	if d.r.at == nil {
		d.r.at = make(map[string]time.Time)
	}
	d.r.at[other.Name] = time.Now()
	d.r.mu.Unlock()
}

// reachCand is one live verified run to watch.
type reachCand struct {
	id, member  string
	tls         netip.AddrPort
	unreachable bool
	seen        int // other live members reached from here
}

// reachLoop watches the live verified runs for direct acks, and asks the
// silent ones by handshake (see above).
func (m *Mesh) reachLoop(ctx context.Context) {
	tick := time.NewTimer(reachTick)
	defer tick.Stop()
	since := make(map[string]time.Time) // when a run was first watched, or last asked and answered
	asked := make(map[string]time.Time) // when an unreachable run was last asked
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		tick.Reset(m.reachPass(ctx, since, asked))
	}
}

// reachPass is one look of reachLoop: it asks the silent peers, and says
// how long to wait before the next look.
func (m *Mesh) reachPass(ctx context.Context, since, asked map[string]time.Time) time.Duration {
	now := time.Now()
	m.mu.Lock()
	probe := time.Second
	if m.mlConf != nil {
		probe = m.mlConf.ProbeInterval
	}
	quiet := time.Duration(2*m.table.live+reachSlackProb) * probe
	var cands []reachCand
	reached := 0
	for _, e := range m.table.peers {
		if e.alive && e.unreachFrom != e.member {
			reached++
		}
	}
	for _, e := range m.table.peers {
		// A peer never verified is watched too once verification
		// gave up: one only gossip vouches for (on a LAN this node
		// is not on) is shown unreachable from here, not reachable.
		if !e.alive || e.held || e.checking || !e.Verified && e.verifyTries < maxVerifyTries {
			continue
		}
		c := reachCand{id: e.ID, member: e.member, tls: netip.AddrPortFrom(e.Addr, e.TLSPort), unreachable: e.unreachFrom == e.member}
		c.seen = reached
		if !c.unreachable {
			c.seen-- // itself
		}
		cands = append(cands, c)
	}
	m.mu.Unlock()
	live := make(map[string]bool, len(cands))
	var ask []reachCand
	wait := reachIdle
	for _, c := range cands {
		live[c.member] = true
		if _, ok := since[c.member]; !ok {
			since[c.member] = now
		}
		ack := m.acks.last(c.member)
		if c.unreachable {
			wait = reachTick
		} else {
			wait = min(wait, maxTime(ack, since[c.member]).Add(quiet).Sub(now))
		}
		switch {
		case c.unreachable && ack.After(asked[c.member]):
			m.q.push(memberEvent{kind: evReach, name: c.member, ok: true})
			since[c.member] = now
		case c.unreachable && now.Sub(asked[c.member]) >= reachRecheck:
			ask = append(ask, c)
		case !c.unreachable && now.Sub(maxTime(ack, since[c.member])) > quiet:
			ask = append(ask, c)
		}
	}
	for name := range since {
		if !live[name] {
			delete(since, name)
			delete(asked, name)
		}
	}
	m.acks.keep(live)
	var wg sync.WaitGroup
	sem := make(chan struct{}, holdDials)
	results := make([]bool, len(ask))
	for i, c := range ask {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i], _ = m.ask(ctx, c.tls, c.id) // several tries: loss is no verdict
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return reachTick
	}
	done := time.Now()
	for i, c := range ask {
		asked[c.member] = done
		if results[i] {
			since[c.member] = done // asked again only after another quiet spell
		} else {
			wait = reachTick
			m.log.Debug("a live peer is not reachable from here", "peer", ShortID(c.id), "addr", c.tls, "seen_by", c.seen)
		}
		m.q.push(memberEvent{kind: evReach, name: c.member, ok: results[i], seen: c.seen})
	}
	return max(wait, reachTick)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
