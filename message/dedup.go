package message

import "sync"

// seenState is what dedup.begin found.
type seenState int

const (
	seenNew  seenState = iota // not seen: the caller delivers it and calls finish
	seenDone                  // delivered before: acknowledge as a duplicate
	seenBusy                  // being delivered by another stream: wait, then ask again
)

// dedup remembers the most recently delivered messages, at most max of
// them, forgetting the oldest first; and which are being delivered right
// now, so that a resend arriving on a second stream while the first is
// still delivering waits instead of delivering twice.
type dedup struct {
	max int

	mu   sync.Mutex                 // guards the fields below
	done map[dedupKey]struct{}      // delivered, at most max entries
	ring []dedupKey                 // delivery order of done; ring[next] is the oldest once full
	next int                        // where the next delivered key goes in ring
	busy map[dedupKey]chan struct{} // being delivered; the channel closes when finish is called
	// waits counts begin calls that found a key busy: how tests see that
	// a concurrent resend is waiting rather than delivering.
	waits int
}

func newDedup(max int) *dedup {
	return &dedup{
		max:  max,
		done: make(map[dedupKey]struct{}),
		busy: make(map[dedupKey]chan struct{}),
	}
}

// begin looks k up. For seenNew it marks k busy and the caller must call
// finish; for seenBusy it returns a channel that closes when the delivery
// in progress ends.
func (d *dedup) begin(k dedupKey) (seenState, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.done[k]; ok {
		return seenDone, nil
	}
	if ch, ok := d.busy[k]; ok {
		d.waits++
		return seenBusy, ch
	}
	d.busy[k] = make(chan struct{})
	return seenNew, nil
}

// finish ends the delivery of k begun by begin. A delivered k is
// remembered; a failed one is forgotten so that a resend is delivered.
func (d *dedup) finish(k dedupKey, delivered bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	close(d.busy[k])
	delete(d.busy, k)
	if !delivered {
		return
	}
	if len(d.ring) < d.max {
		d.ring = append(d.ring, k)
	} else {
		delete(d.done, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % d.max
	}
	d.done[k] = struct{}{}
}

// len returns how many delivered keys are remembered.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.done)
}

// busyWaits returns how many lookups found their key being delivered.
func (d *dedup) busyWaits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waits
}
