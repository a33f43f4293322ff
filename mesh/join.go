package mesh

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// joinWorkers is how many joins may be in flight at once; a join to a
// dead address can take memberlist's TCPTimeout.
const joinWorkers = 4

// AddCandidate takes a peer seen by discovery (or named by the user) and
// joins it unless it is already a live member. addr is a gossip host:port.
func (m *Mesh) AddCandidate(id string, addr string) {
	if id == m.id {
		return
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Zone() != "" {
		// memberlist cannot parse a zone; the transport puts it back.
		m.routes.learnZone(ap.Addr())
		addr = netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port()).String()
	}
	if id != "" {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			m.doc.heard.saw(id, ap, time.Now()) // for lanchat doctor, even when live
		}
		m.mu.Lock()
		e := m.table.peers[id]
		live := e != nil && e.alive
		m.mu.Unlock()
		if live {
			return
		}
	}
	m.enqueueJoin(addr)
}

// enqueueJoin never blocks: candidates come again (discovery browses on,
// rejoinLoop ticks), so one dropped while the queue is full is not lost.
func (m *Mesh) enqueueJoin(addr string) {
	select {
	case m.joinCh <- addr:
	default:
		m.log.Debug("join queue full, dropping candidate", "addr", addr)
	}
}

// liveAtLocked says whether a live member gossips at addr (host:port).
// Called with mu held.
func (m *Mesh) liveAtLocked(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	for _, e := range m.table.peers {
		if e.alive && e.Addr == ap.Addr() && e.GossipPort == ap.Port() {
			return true
		}
	}
	return false
}

func (m *Mesh) joinWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-m.joinCh:
			if !m.dials.allowHostPort(addr) {
				m.log.Debug("join: address dialled too often, dropping candidate", "addr", addr)
				continue
			}
			m.mu.Lock()
			ml := m.ml
			// Discovery hands a starting node all its peers at once,
			// and all of them the new node: by the time a join's turn
			// comes, the push-pull of an earlier one has usually made
			// the candidate a live member, and another full exchange of
			// the member list would only load both ends.
			live := m.liveAtLocked(addr)
			m.mu.Unlock()
			if live {
				continue
			}
			if _, err := ml.Join([]string{addr}); err != nil {
				m.log.Debug("join failed", "addr", addr, "err", err)
			}
		}
	}
}

// Reconnect timing. The delays cap at reconnectMaxDelay so that a healed
// split, whose two sides each see the other as lost, re-merges within
// about that long even when only two nodes were cut apart: one dial across
// is enough, push-pull merges the rest.
const (
	reconnectBaseDelay = time.Second
	reconnectMaxDelay  = 20 * time.Second
	reconnectInFlight  = 4
	// probeTimeout bounds the TLS probe of a lost peer: on a LAN a live
	// peer answers in milliseconds, and a dead address only times out.
	probeTimeout = 2 * time.Second
)

// reconnectLoop dials peers lost without a goodbye, and the seeds while
// none of them is alive, on the reconnector's schedule. memberlist never
// contacts a dead node again by itself, so without this the two halves of
// a healed split stay apart. Its dials run beside the join workers, so a
// candidate from discovery never waits behind a dead address.
func (m *Mesh) reconnectLoop(ctx context.Context) {
	var dials sync.WaitGroup
	defer dials.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.reconnectWake:
		}
		now := time.Now()
		m.mu.Lock()
		m.recon.spread = spreadOver(int(m.members.Load()))
		m.updateSeeds(now)
		var plans []dialPlan
		for {
			p, ok := m.recon.next(now)
			if !ok {
				break
			}
			plans = append(plans, p)
		}
		wait, any := m.recon.wait(now)
		m.mu.Unlock()
		for _, p := range plans {
			dials.Go(func() {
				out := m.reconnect(ctx, p)
				m.mu.Lock()
				m.recon.done(p, out, time.Now())
				m.mu.Unlock()
				m.wakeReconnect()
			})
		}
		if !any {
			// Nothing due: a loss, a finished dial or a seed's
			// liveness (looked at each minute) wakes the loop.
			wait = time.Minute
		}
		timer.Reset(max(wait, 10*time.Millisecond))
	}
}

// updateSeeds keeps the seeds on the schedule while none of them is a live
// member's address, and off it while one is. Called with mu held.
func (m *Mesh) updateSeeds(now time.Time) {
	if len(m.cfg.Join) == 0 {
		return
	}
	alive := false
	for _, e := range m.table.peers {
		if e.alive && slices.Contains(m.cfg.Join, netip.AddrPortFrom(e.Addr, e.GossipPort).String()) {
			alive = true
			break
		}
	}
	for _, s := range m.cfg.Join {
		if alive {
			m.recon.found(seedKey(s))
		} else {
			m.recon.seed(s, now)
		}
	}
}

// wakeReconnect makes reconnectLoop look at its schedule again soon.
func (m *Mesh) wakeReconnect() {
	select {
	case m.reconnectWake <- struct{}{}:
	default:
	}
}

// reconnect makes one dial of the schedule. A known peer's address is
// first proven to still be that peer's, by a TLS handshake checking its
// key: memberlist's join checks no identity, and a laptop's old DHCP
// address may be another machine's now. Only then is it joined.
func (m *Mesh) reconnect(ctx context.Context, p dialPlan) dialOutcome {
	if !m.dials.allowHostPort(p.gossip) {
		return dialFailed
	}
	if p.id != "" {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		s, err := m.dialer.DialAddr(pctx, p.tls.String(), p.id, ALPNPing)
		cancel()
		if errors.Is(err, ErrWrongPeer) {
			m.log.Info("a lost peer's address now holds another identity; no longer dialling it", "peer", ShortID(p.id), "addr", p.tls)
			m.mu.Lock()
			m.retire(p.id, p.tls)
			m.mu.Unlock()
			return dialWrongKey
		}
		if err != nil {
			m.log.Debug("reconnect: peer not reachable", "peer", ShortID(p.id), "addr", p.tls, "err", err)
			return dialFailed
		}
		s.Close()
		m.answeredDial(p.id, p.tls)
	}
	m.mu.Lock()
	ml := m.ml
	m.mu.Unlock()
	if _, err := ml.Join([]string{p.gossip}); err != nil {
		m.log.Debug("reconnect: join failed", "addr", p.gossip, "err", err)
		return dialFailed
	}
	return dialReached
}
