package mesh

import (
	"net/netip"
	"time"

	"lanchat/internal/ratelimit"
)

// addrLimiter is a token bucket per IP address for the dials this node
// makes to addresses others named: gossip's members (verification,
// reconnects) and discovery's candidates (joins). Whatever a stranger
// announces, one address is dialled at most burst times at once and rate
// times a second after that, so the node cannot be used to flood a third
// party. Buckets are kept for at most maxBuckets addresses; past that, a
// new address is not dialled until buckets refill (doing nothing is the
// safe side of a dial).
type addrLimiter struct{ k *ratelimit.Keyed[netip.Addr] }

const maxBuckets = 4096

func newAddrLimiter(rate float64, burst int) *addrLimiter { return newAddrLimiterAt(rate, burst, nil) }

func newAddrLimiterAt(rate float64, burst int, now func() time.Time) *addrLimiter {
	return &addrLimiter{k: ratelimit.New[netip.Addr](rate, float64(burst), maxBuckets, ratelimit.Refuse, now)}
}

// allow takes a token for a dial to addr, reporting false when its bucket
// is empty (or too many addresses are being dialled to keep count).
func (l *addrLimiter) allow(addr netip.Addr) bool { return l.k.Allow(addr.Unmap().WithZone("")) }

// allowHostPort is allow for a "host:port" string. Only the user names
// hosts by name (--join seeds), so one that is not an IP is let through.
func (l *addrLimiter) allowHostPort(hp string) bool {
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return true
	}
	return l.allow(ap.Addr())
}
