package mesh

import (
	"context"
	"net/netip"
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
	if id != "" {
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

func (m *Mesh) joinWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-m.joinCh:
			m.mu.Lock()
			ml := m.ml
			m.mu.Unlock()
			if _, err := ml.Join([]string{addr}); err != nil {
				m.log.Debug("join failed", "addr", addr, "err", err)
			}
		}
	}
}

// rejoinLoop dials peers lost without a goodbye, and the seeds while none
// of them is alive. memberlist never contacts a dead node again by itself,
// so without this the two halves of a healed split stay apart.
func (m *Mesh) rejoinLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []string
		aliveAddrs := map[string]bool{}
		m.mu.Lock()
		for _, e := range m.table.peers {
			a := netip.AddrPortFrom(e.Addr, e.GossipPort).String()
			if e.alive {
				aliveAddrs[a] = true
			} else if e.State == Offline {
				addrs = append(addrs, a)
			}
		}
		m.mu.Unlock()
		for _, s := range m.cfg.Join {
			if !aliveAddrs[s] {
				addrs = append(addrs, s)
			}
		}
		for _, a := range addrs {
			m.enqueueJoin(a)
		}
	}
}
