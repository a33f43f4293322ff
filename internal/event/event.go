// Package event is the subscription registry that mesh and node share: a
// set of callbacks, each with its own cancel, handed a snapshot to call
// outside the lock that guards them. It exists so both publish the same
// way, not as an event bus.
package event

import "sync"

// Registry holds subscribers to events of type T. The zero value is ready.
type Registry[T any] struct {
	mu   sync.Mutex // guards the fields below
	next int
	subs map[int]func(T)
}

// Subscribe adds fn and returns the func that removes it.
func (r *Registry[T]) Subscribe(fn func(T)) (cancel func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs == nil {
		r.subs = make(map[int]func(T))
	}
	k := r.next
	r.next++
	r.subs[k] = fn
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subs, k)
	}
}

// Publish calls every subscriber with ev. The subscribers are copied
// first, so a subscriber may subscribe or cancel without deadlock. The
// caller orders concurrent Publish calls if order matters.
func (r *Registry[T]) Publish(ev T) {
	r.mu.Lock()
	fns := make([]func(T), 0, len(r.subs))
	for _, fn := range r.subs {
		fns = append(fns, fn)
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}
