package node

import (
	"sync"
	"time"
)

// limiter is a token bucket per peer for received messages. A peer that
// floods gets refusals (its messages stay in its own outbox and come
// again later), while every other peer keeps its own full allowance; the
// store and the CPU are not monopolised by one sender.
type limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Default allowance per peer: far above what people type or scripts
// usually send, low enough that one peer cannot take all of a node.
const (
	defaultPeerRate  = 5000
	defaultPeerBurst = 50000
)

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(peer string) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[peer]
	if !ok {
		if len(l.buckets) > 10000 { // forget idle peers rather than grow
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
