package chat

import (
	"time"

	"lanchat/internal/ratelimit"
)

// limiter is a token bucket per peer for received envelopes. A peer that
// floods gets refusals (its envelopes stay in its own outbox and come
// again later), while every other peer keeps its own full allowance; the
// store and the CPU are not monopolised by one sender.
type limiter struct {
	rate float64
	k    *ratelimit.Keyed[string]
}

// maxBuckets bounds the table a stranger could grow with fresh keys; past
// it, refilled buckets are forgotten, or all of them (a fresh key gets a
// full bucket anyway, so that costs no protection).
const maxBuckets = 10000

func newLimiter(rate, burst float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, k: ratelimit.New[string](rate, burst, maxBuckets, ratelimit.Reset, now)}
}

func (l *limiter) allow(peer string) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	return l.k.Allow(peer)
}
