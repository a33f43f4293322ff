package message

import (
	"math"
	"sync"
	"testing"
	"time"
)

// fakeTime is a settable wall clock.
type fakeTime struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (f *fakeTime) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeTime) set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

var epoch = time.Unix(1_700_000_000, 0)

func TestTimestampLess(t *testing.T) {
	tests := []struct {
		name string
		a, b Timestamp
		want bool
	}{
		{"earlier wall", Timestamp{1, 9}, Timestamp{2, 0}, true},
		{"later wall", Timestamp{2, 0}, Timestamp{1, 9}, false},
		{"same wall, smaller logical", Timestamp{1, 1}, Timestamp{1, 2}, true},
		{"equal", Timestamp{1, 1}, Timestamp{1, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Less(tt.b); got != tt.want {
				t.Fatalf("%v.Less(%v) = %v", tt.a, tt.b, got)
			}
		})
	}
}

func TestClockMonotonicWhenWallGoesBackwards(t *testing.T) {
	ft := &fakeTime{t: epoch}
	c := NewClock(ft.now)
	a := c.Now()
	if a.Wall != epoch.UnixNano() || a.Logical != 0 {
		t.Fatalf("first reading %v, want the wall time", a)
	}
	b := c.Now() // same wall time
	ft.set(epoch.Add(-time.Minute))
	d := c.Now() // wall clock stepped back
	e := c.Now()
	for i, pair := range [][2]Timestamp{{a, b}, {b, d}, {d, e}} {
		if !pair[0].Less(pair[1]) {
			t.Fatalf("reading %d: %v not before %v", i, pair[0], pair[1])
		}
	}
	ft.set(epoch.Add(time.Second))
	if f := c.Now(); f != (Timestamp{Wall: epoch.Add(time.Second).UnixNano()}) {
		t.Fatalf("after the wall clock passed the old time: %v, want it to follow the wall clock", f)
	}
}

func TestClockObserveRemoteAhead(t *testing.T) {
	ft := &fakeTime{t: epoch}
	c := NewClock(ft.now)
	remote := Timestamp{Wall: epoch.Add(MaxClockAhead - time.Second).UnixNano(), Logical: 4}
	if !c.Observe(remote) {
		t.Fatalf("a remote %v ahead was refused", MaxClockAhead-time.Second)
	}
	if n := c.Now(); !remote.Less(n) {
		t.Fatalf("Now %v is not after the observed %v", n, remote)
	}
	// A remote behind us changes nothing but the order.
	before := c.Now()
	c.Observe(Timestamp{Wall: epoch.Add(-time.Hour).UnixNano()})
	if n := c.Now(); !before.Less(n) {
		t.Fatalf("Now %v is not after %v", n, before)
	}
}

func TestClockObserveEqualWalls(t *testing.T) {
	ft := &fakeTime{t: epoch}
	c := NewClock(ft.now)
	c.Now()
	remote := Timestamp{Wall: epoch.UnixNano(), Logical: 50}
	c.Observe(remote)
	if n := c.Now(); n != (Timestamp{Wall: epoch.UnixNano(), Logical: 52}) {
		t.Fatalf("Now = %v, want logical 52 (observed 50, +1, +1)", n)
	}
}

func TestClockObserveFarFutureClamped(t *testing.T) {
	ft := &fakeTime{t: epoch}
	c := NewClock(ft.now)
	far := Timestamp{Wall: epoch.Add(MaxClockAhead + time.Minute).UnixNano()}
	if c.Observe(far) {
		t.Fatal("Observe accepted a remote far in the future")
	}
	n := c.Now()
	if n.Wall != epoch.UnixNano() {
		t.Fatalf("clock moved to %v, want it to stay at the wall time %v", n, epoch)
	}
	// Just within the limit is followed.
	near := Timestamp{Wall: epoch.Add(MaxClockAhead).UnixNano()}
	if !c.Observe(near) {
		t.Fatal("Observe refused a remote exactly MaxClockAhead ahead")
	}
	if n := c.Now(); !near.Less(n) {
		t.Fatalf("Now %v not after %v", n, near)
	}
}

func TestClockLogicalOverflow(t *testing.T) {
	ft := &fakeTime{t: epoch}
	c := NewClock(ft.now)
	remote := Timestamp{Wall: epoch.UnixNano(), Logical: math.MaxUint32}
	c.Observe(remote)
	if n := c.Now(); !remote.Less(n) {
		t.Fatalf("Now %v not after %v", n, remote)
	}
}

func TestClockConcurrentUnique(t *testing.T) {
	ft := &fakeTime{t: epoch} // frozen: every reading differs only logically
	c := NewClock(ft.now)
	const goroutines, each = 8, 500
	out := make(chan Timestamp, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%10 == 0 {
					c.Observe(Timestamp{Wall: epoch.UnixNano(), Logical: uint32(i)})
				}
				out <- c.Now()
			}
		}()
	}
	wg.Wait()
	close(out)
	seen := make(map[Timestamp]bool)
	for ts := range out {
		if seen[ts] {
			t.Fatalf("timestamp %v handed out twice", ts)
		}
		seen[ts] = true
	}
}
