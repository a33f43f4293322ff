package chat

import (
	"sync"
	"time"
)

// limiter is a token bucket per peer for received envelopes. A peer that
// floods gets refusals (its envelopes stay in its own outbox and come
// again later), while every other peer keeps its own full allowance; the
// store and the CPU are not monopolised by one sender.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the table a stranger could grow with fresh keys;
// past it, buckets idle for a minute (full again by then) are forgotten.
const maxBuckets = 10000

func newLimiter(rate, burst float64, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{rate: rate, burst: burst, now: now, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(peer string) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[peer]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			for k, v := range l.buckets {
				if now.Sub(v.last) > time.Minute {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[peer] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
