package mesh

import (
	"net/netip"
	"sync"
	"time"
)

// addrLimiter is a token bucket per IP address for the dials this node
// makes to addresses others named: gossip's members (verification,
// reconnects) and discovery's candidates (joins). Whatever a stranger
// announces, one address is dialled at most burst times at once and rate
// times a second after that, so the node cannot be used to flood a third
// party. Buckets are kept for at most maxBuckets addresses; a full bucket
// is the same as none, so those are dropped first.
type addrLimiter struct {
	rate  float64 // tokens a second
	burst float64
	now   func() time.Time

	mu      sync.Mutex // guards buckets
	buckets map[netip.Addr]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

const maxBuckets = 4096

func newAddrLimiter(rate float64, burst int) *addrLimiter {
	return &addrLimiter{rate: rate, burst: float64(burst), now: time.Now, buckets: make(map[netip.Addr]*tokenBucket)}
}

// allow takes a token for a dial to addr, reporting false when its bucket
// is empty (or too many addresses are being dialled to keep count).
func (l *addrLimiter) allow(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
			if len(l.buckets) >= maxBuckets {
				return false
			}
		}
		b = &tokenBucket{tokens: l.burst, at: now}
		l.buckets[addr] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allowHostPort is allow for a "host:port" string. Only the user names
// hosts by name (--join seeds), so one that is not an IP is let through.
func (l *addrLimiter) allowHostPort(hp string) bool {
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return true
	}
	return l.allow(ap.Addr())
}

// prune drops buckets that have refilled. Called with mu held.
func (l *addrLimiter) prune(now time.Time) {
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, a)
		}
	}
}
