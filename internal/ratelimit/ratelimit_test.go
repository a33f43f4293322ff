package ratelimit

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBurstThenRate(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := New[string](2, 5, 100, Reset, c.now)
	n := 0
	for range 100 {
		if l.Allow("a") {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d allowed at once, want the burst of 5", n)
	}
	if !l.Allow("b") {
		t.Fatal("another key shares the first one's bucket")
	}
	c.t = c.t.Add(time.Second) // two tokens back
	n = 0
	for range 10 {
		if l.Allow("a") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d allowed a second later, want the rate of 2", n)
	}
}

// A flood of fresh keys never grows the table past max; Refuse turns
// new keys away while the held ones are busy, Reset starts over.
func TestTableIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	for _, full := range []WhenFull{Reset, Refuse} {
		l := New[int](1, 2, 50, full, c.now)
		refused := 0
		for k := range 1000 {
			l.Allow(k)
			if !l.Allow(k) { // a key that took its burst is busy, not refilled
				refused++
			}
			if l.Len() > 50 {
				t.Fatalf("%v: %d buckets, max 50", full, l.Len())
			}
		}
		if full == Refuse && refused < 900 {
			t.Errorf("Refuse turned away only %d of 950 new keys over a full table", refused)
		}
		if full == Reset && refused != 0 {
			t.Errorf("Reset refused %d new keys", refused)
		}
	}
	// Refilled buckets make room, whatever the policy.
	l := New[int](1, 1, 2, Refuse, c.now)
	l.Allow(1)
	l.Allow(2)
	if l.Allow(3) {
		t.Fatal("a third key over a full, busy table")
	}
	c.t = c.t.Add(2 * time.Second)
	if !l.Allow(3) {
		t.Fatal("refilled buckets did not make room")
	}
}
