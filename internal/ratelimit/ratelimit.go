// Package ratelimit is a token bucket per key — per peer id, per address —
// with a bounded table, for whatever a stranger can make the node do as
// often as it likes.
package ratelimit

import (
	"sync"
	"time"
)

// WhenFull says what a Keyed does with a new key when its table holds max
// keys none of which has refilled (a flood of fresh keys).
type WhenFull int

const (
	// Reset forgets every bucket: a fresh key gets a full bucket anyway,
	// so forgetting costs no protection, and honest keys are not refused.
	Reset WhenFull = iota
	// Refuse refuses the new key until buckets refill: for what the node
	// would do for a stranger (dial an address it named), where doing
	// nothing is the safe side.
	Refuse
)

// Keyed is a token bucket per key: rate tokens a second, at most burst,
// a full bucket for a key not seen yet. It keeps at most max buckets;
// when that many are held, those that have refilled (the same as none)
// are forgotten first. It is safe for concurrent use.
type Keyed[K comparable] struct {
	rate, burst float64
	max         int
	full        WhenFull
	now         func() time.Time

	mu      sync.Mutex
	buckets map[K]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was counted
}

// New makes a Keyed; now is its clock (time.Now when nil).
func New[K comparable](rate, burst float64, max int, full WhenFull, now func() time.Time) *Keyed[K] {
	if now == nil {
		now = time.Now
	}
	return &Keyed[K]{rate: rate, burst: burst, max: max, full: full, now: now, buckets: make(map[K]*bucket)}
}

// Allow takes a token from key's bucket and reports whether there was one.
func (l *Keyed[K]) Allow(key K) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.prune(now)
			if len(l.buckets) >= l.max {
				if l.full == Refuse {
					return false
				}
				clear(l.buckets)
			}
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Len is how many buckets are held.
func (l *Keyed[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// prune forgets buckets that have refilled. l.mu is held.
func (l *Keyed[K]) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
