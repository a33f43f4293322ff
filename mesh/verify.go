package mesh

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Verification timing: how soon a failed dial is retried, and how often
// due retries are looked for.
const (
	verifyRetryDelay = 500 * time.Millisecond
	verifyTick       = 250 * time.Millisecond
)

// verifyLoop proves, for every peer that joins, that whoever gossips under
// its id holds its key: gossip claims are only hints until then.
func (m *Mesh) verifyLoop(ctx context.Context) {
	type retry struct {
		id  string
		due time.Time
	}
	var retries []retry
	waiting := make(map[string]bool) // ids in retries: one retry each
	later := func(id string) {
		if !waiting[id] {
			waiting[id] = true
			retries = append(retries, retry{id: id, due: time.Now().Add(verifyRetryDelay)})
		}
	}
	tick := time.NewTicker(verifyTick)
	defer tick.Stop()
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-m.verifyCh:
		case now := <-tick.C:
			kept := retries[:0]
			for _, r := range retries {
				if now.After(r.due) {
					delete(waiting, r.id)
					m.queueVerify(r.id)
				} else {
					kept = append(kept, r)
				}
			}
			retries = kept
			continue
		}
		m.mu.Lock()
		member, addr, due := m.table.toVerify(id)
		m.mu.Unlock()
		if !due {
			continue
		}
		if !m.dials.allow(addr.Addr()) {
			// Not a failed try: the address is dialled too often (many
			// members name it). Ask again later.
			later(id)
			continue
		}
		s, err := m.dialer.DialAddr(ctx, addr.String(), id, ALPNPing)
		if err == nil {
			s.Close()
			m.reportVerified(member, addr)
			continue
		}
		if errors.Is(err, ErrWrongPeer) {
			m.log.Warn("refusing to trust a peer: its address answers with another key", "peer", ShortID(id), "addr", addr, "err", err)
			continue
		}
		m.mu.Lock()
		again := m.table.retryVerify(id, member)
		m.mu.Unlock()
		if again {
			later(id)
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
