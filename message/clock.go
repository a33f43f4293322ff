package message

import (
	"cmp"
	"fmt"
	"math"
	"sync"
	"time"
)

// MaxClockAhead is how far ahead of our own clock a remote timestamp may be
// and still move our clock. A peer whose clock is further ahead (a wrong
// date, a hostile peer) would otherwise drag every clock on the LAN with it:
// each node that saw its message would stamp its own messages up to that
// far into the future. Five minutes is the skew Kerberos tolerates, the
// usual bound an office's machines are kept within; a direct message
// stamped beyond it is kept at its arrival time instead (package chat).
const MaxClockAhead = 5 * time.Minute

// Timestamp is a hybrid logical clock reading: wall time where clocks agree,
// and a logical counter that orders events within one wall-clock value and
// when a remote clock is ahead of ours.
type Timestamp struct {
	Wall    int64  // unix nanoseconds
	Logical uint32 // orders events that share Wall
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Timestamp) Compare(u Timestamp) int {
	if c := cmp.Compare(t.Wall, u.Wall); c != 0 {
		return c
	}
	return cmp.Compare(t.Logical, u.Logical)
}

// Less reports whether t is before u.
func (t Timestamp) Less(u Timestamp) bool { return t.Compare(u) < 0 }

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// WallTime returns the wall part as a time.Time.
func (t Timestamp) WallTime() time.Time { return time.Unix(0, t.Wall) }

// String formats t as RFC 3339 with nanoseconds and the logical counter.
func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", t.WallTime().UTC().Format(time.RFC3339Nano), t.Logical)
}

// Clock is a hybrid logical clock (Kulkarni et al., 2014). Now never
// returns the same or an earlier Timestamp twice, even when the wall clock
// steps back, and after Observe(r) every Now is after r. It is safe for
// concurrent use.
type Clock struct {
	now func() time.Time

	mu   sync.Mutex // guards last
	last Timestamp  // the latest reading handed out or observed
}

// NewClock returns a Clock reading wall time from now (time.Now if nil).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Now returns a Timestamp after every earlier Now and Observe.
func (c *Clock) Now() Timestamp {
	pt := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.last.Wall {
		c.last = Timestamp{Wall: pt}
	} else {
		c.last = c.last.next()
	}
	return c.last
}

// Observe merges a remote Timestamp (from a received message) so that
// later readings come after it. A remote wall time more than MaxClockAhead
// ahead of our wall clock does not move the clock: it is clamped to our
// wall time, and Observe reports false so the caller can log it.
func (c *Clock) Observe(remote Timestamp) bool {
	pt := c.now().UnixNano()
	ok := true
	if remote.Wall > pt && remote.Wall-pt > int64(MaxClockAhead) {
		remote, ok = Timestamp{Wall: pt}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.last.Wall && pt > remote.Wall:
		c.last = Timestamp{Wall: pt}
	case remote.Compare(c.last) > 0:
		c.last = remote.next()
	default:
		c.last = c.last.next()
	}
	return ok
}

// Next is the smallest Timestamp after t.
func (t Timestamp) Next() Timestamp { return t.next() }

// next is the smallest Timestamp after t.
func (t Timestamp) next() Timestamp {
	if t.Logical == math.MaxUint32 {
		return Timestamp{Wall: t.Wall + 1}
	}
	return Timestamp{Wall: t.Wall, Logical: t.Logical + 1}
}
