package mesh

import (
	"net/netip"
	"sync"
	"time"
)

// maxSightings bounds the peers whose mDNS answers are remembered: anyone
// on the LAN can answer with a fresh id at every query.
const maxSightings = 1024

// sightings remembers, per peer id, when and where mDNS last named it: a
// claim, not a proof (anyone can answer with any id), which lanchat doctor
// reports as such. Its zero value is ready.
type sightings struct {
	mu sync.Mutex          // guards by
	by map[string]sighting // at most maxSightings entries
}

type sighting struct {
	at   time.Time
	addr netip.AddrPort // the gossip address the answer gave
}

// saw records that mDNS named id at addr at now. When the table is full
// the oldest sighting is forgotten.
func (s *sightings) saw(id string, addr netip.AddrPort, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = make(map[string]sighting)
	}
	if _, ok := s.by[id]; !ok && len(s.by) >= maxSightings {
		var oldest string
		for k, v := range s.by {
			if oldest == "" || v.at.Before(s.by[oldest].at) {
				oldest = k
			}
		}
		delete(s.by, oldest)
	}
	s.by[id] = sighting{at: now, addr: addr}
}

func (s *sightings) last(id string) (sighting, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.by[id]
	return v, ok
}

// HeardByMDNS says when discovery last named peer id (AddCandidate), and
// at which gossip address; ok is false if it never did.
func (m *Mesh) HeardByMDNS(id string) (at time.Time, addr netip.AddrPort, ok bool) {
	v, ok := m.doc.heard.last(id)
	return v.at, v.addr, ok
}
