package mesh

import (
	"net/netip"
	"testing"
	"time"
)

func TestAddrLimiterBoundsDialsPerAddress(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAddrLimiterAt(2, 8, func() time.Time { return now })
	victim, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	n := 0
	for range 100 {
		if l.allow(victim) {
			n++
		}
	}
	if n != 8 {
		t.Fatalf("%d dials at once to one address, want the burst of 8", n)
	}
	if !l.allow(other) {
		t.Fatal("another address is held back by the first one's budget")
	}
	now = now.Add(time.Second)
	n = 0
	for range 100 {
		if l.allow(netip.MustParseAddr("::ffff:192.0.2.1")) { // the same address, mapped
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d dials in the next second, want 2", n)
	}
	if !l.allowHostPort("seed.example:7480") || l.allowHostPort("192.0.2.1:7480") {
		t.Fatal("host names are the user's (let through); IPs are counted")
	}
	// The table of buckets is bounded: refilled ones go first.
	for i := range maxBuckets + 10 {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if l.k.Len() > maxBuckets {
		t.Fatalf("%d buckets, cap %d", l.k.Len(), maxBuckets)
	}
}
