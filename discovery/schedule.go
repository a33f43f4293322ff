package discovery

import (
	"crypto/sha256"
	"net"
	"time"
)

// schedule decides when to query, as a state machine with no clock or I/O
// of its own (Run drives it; tests drive it with a fake clock). RFC 6762
// §5.2: a few queries quickly at start, then intervals that at least
// double, to an hour. Here they double only while gossip holds the cluster
// (peers > 0); a node alone stays at the slow interval, and one that lost
// every peer starts over with quick queries, as after a network change.
type schedule struct {
	quick     int           // quick queries at start
	quickGap  time.Duration // between quick queries
	slow, max time.Duration // the first slow gap, and the cap of doubling
	quickLeft int           // quick queries still to send
	interval  time.Duration // the gap after the next slow query
	due       time.Time     // of the next query
	hadPeers  bool          // peers was > 0 when last told
}

func newSchedule(quick int, quickGap, slow, max time.Duration, now time.Time) *schedule {
	s := &schedule{quick: quick, quickGap: quickGap, slow: slow, max: max}
	s.restart(now)
	return s
}

// restart makes the next query due now and the quick ones start over.
func (s *schedule) restart(now time.Time) {
	s.quickLeft = s.quick
	s.interval = s.slow
	s.due = now
}

// fire records a query sent at now, when peers are live, and returns the
// gap until the next one.
func (s *schedule) fire(now time.Time, peers int) time.Duration {
	var gap time.Duration
	if s.quickLeft > 1 {
		s.quickLeft--
		gap = s.quickGap
	} else {
		s.quickLeft = 0
		gap = s.interval
		if peers > 0 {
			s.interval = min(s.interval*2, s.max)
		} else {
			s.interval = s.slow
		}
	}
	s.due = now.Add(gap)
	return gap
}

// peers tells the schedule how many live peers there are at now. It
// reports true when it restarted the schedule: all peers were lost.
func (s *schedule) peers(n int, now time.Time) bool {
	lostAll := s.hadPeers && n == 0
	s.hadPeers = n > 0
	if lostAll {
		s.restart(now)
		return true
	}
	if n == 0 && s.interval > s.slow {
		s.interval = s.slow
	}
	return false
}

// failed records a failed attempt at now: retry after the slow interval,
// with the quick queries again once it works.
func (s *schedule) failed(now time.Time) {
	s.quickLeft = s.quick
	s.interval = s.slow
	s.due = now.Add(s.slow)
}

// netFingerprint summarises the up interfaces and their addresses (of
// iface only, if set), so that Run notices a network change: a cable in,
// a new DHCP lease, a Wi-Fi roam.
func netFingerprint(iface *net.Interface) [32]byte {
	var ifaces []net.Interface
	if iface != nil {
		if ifc, err := net.InterfaceByIndex(iface.Index); err == nil {
			ifaces = []net.Interface{*ifc}
		}
	} else {
		ifaces, _ = net.Interfaces()
	}
	h := sha256.New()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		h.Write([]byte(ifc.Name))
		h.Write([]byte{0, byte(ifc.Flags & (net.FlagUp | net.FlagRunning))})
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			h.Write([]byte(a.String()))
			h.Write([]byte{0})
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
