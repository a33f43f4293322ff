package mesh

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// KnownAddr is where a verified peer was last found: what a node keeps
// across restarts (the node's peers file), so that a network multicast
// does not reach is found again after a reboot without --join.
//
// Only addresses a handshake proved to hold the peer's key are kept: a
// gossiped address is a stranger's word, and remembering it would let
// anyone aim every restart of this node at a third party.
type KnownAddr struct {
	ID     string         `json:"id"`
	Gossip netip.AddrPort `json:"gossip"`
	TLS    netip.AddrPort `json:"tls"`
	Seen   time.Time      `json:"seen"`
}

// MaxKnown caps the addresses remembered: the most recently seen peers
// are enough to find the network again, and push-pull brings the rest.
const MaxKnown = 64

// Valid reports whether k can be dialled as a known peer.
func (k KnownAddr) Valid() bool {
	return ValidID(k.ID) && k.Gossip.IsValid() && k.TLS.IsValid() && k.Gossip.Port() != 0 && k.TLS.Port() != 0 &&
		k.Gossip.Addr() == k.TLS.Addr() && !k.Gossip.Addr().IsUnspecified() && !k.Gossip.Addr().IsMulticast()
}

// remember records the verified address of a peer (an event with
// Verified set). Called with mu held.
func (m *Mesh) remember(p Peer, now time.Time) {
	if !p.Verified || p.ID == m.id {
		return
	}
	m.known[p.ID] = KnownAddr{
		ID: p.ID, Gossip: netip.AddrPortFrom(p.Addr, p.GossipPort), TLS: netip.AddrPortFrom(p.Addr, p.TLSPort), Seen: now,
	}
	if len(m.known) > 2*MaxKnown {
		// Verified peers only, so this takes a large office, not a
		// stranger; keep the table near what is saved.
		keep := m.knownLocked(now)
		clear(m.known)
		for _, k := range keep {
			m.known[k.ID] = k
		}
	}
}

// retire forgets a known address after a dial there met another identity.
// Called with mu held.
func (m *Mesh) retire(id string, tls netip.AddrPort) {
	if k, ok := m.known[id]; ok && k.TLS == tls {
		delete(m.known, id)
	}
}

// KnownAddrs lists the verified peers' last addresses to keep across a
// restart, most recently seen first, at most MaxKnown, none older than the
// reconnect horizon. A peer alive now counts as seen now.
func (m *Mesh) KnownAddrs() []KnownAddr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.knownLocked(time.Now())
}

func (m *Mesh) knownLocked(now time.Time) []KnownAddr {
	out := make([]KnownAddr, 0, len(m.known))
	for id, k := range m.known {
		if e := m.table.peers[id]; e != nil && e.alive && e.Verified &&
			netip.AddrPortFrom(e.Addr, e.TLSPort) == k.TLS {
			k.Seen = now
		}
		if now.Sub(k.Seen) > m.cfg.ReconnectHorizon {
			continue
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b KnownAddr) int {
		if c := b.Seen.Compare(a.Seen); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > MaxKnown {
		out = out[:MaxKnown]
	}
	return out
}

// dialKnown puts the addresses remembered from an earlier run on the
// reconnect schedule, as peers lost when last seen: each dial first proves
// by handshake that the address still holds that peer's key, a dial that
// meets another identity retires the address, and a peer unseen for the
// horizon is not dialled at all. Called with mu held.
func (m *Mesh) dialKnown(now time.Time) {
	for _, k := range m.cfg.Known[:min(len(m.cfg.Known), MaxKnown)] {
		if !k.Valid() || k.ID == m.id || now.Sub(k.Seen) > m.cfg.ReconnectHorizon {
			continue
		}
		seen := k.Seen
		if seen.After(now) {
			seen = now // a clock set back since: count the horizon from now
		}
		m.known[k.ID] = KnownAddr{ID: k.ID, Gossip: k.Gossip, TLS: k.TLS, Seen: seen}
		m.recon.lost(k.ID, k.Gossip.String(), k.TLS, seen)
	}
}
