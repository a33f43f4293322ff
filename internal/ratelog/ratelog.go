// Package ratelog keeps a log readable when a peer floods it. Most of what
// a node logs above debug level is about input it refused — a bad packet,
// a forged answer, a message from a skewed clock — and a host on the LAN
// can send those as fast as it likes: one line each would be 25,000 lines
// in ten seconds, burying everything else and filling the disk of whoever
// keeps the log.
//
// Handler limits each place in the code that logs (the file and line of
// the record's caller, so every line memberlist writes through one adapter
// counts as one place, and a function inlined at several call sites still
// counts once) to a burst of lines, refilled at a steady rate. Lines over
// the limit are counted, not written; the next line from that place that
// is written carries "suppressed", how many were dropped before it. Debug
// lines are never limited: whoever turns them on asked for all of them.
package ratelog

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// Defaults: a place may log 10 lines at once, then one every 6 s (10 a
// minute) for as long as it keeps failing.
const (
	DefaultBurst = 10
	DefaultEvery = 6 * time.Second
)

// maxPlaces bounds the table of places: the program has a fixed number of
// log calls, far fewer, so this is only a guard.
const maxPlaces = 4096

// Handler is a slog.Handler that rate-limits records per call site before
// passing them to another handler.
type Handler struct {
	next  slog.Handler
	state *state
}

type state struct {
	burst float64
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	places map[place]*bucket
	where  map[uintptr]place // a cache of runtime.CallersFrames
}

type place struct {
	file string
	line int
}

type bucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

// New wraps next. burst and every are the limits (DefaultBurst and
// DefaultEvery when zero); now is the clock (time.Now when nil).
func New(next slog.Handler, burst int, every time.Duration, now func() time.Time) *Handler {
	if burst <= 0 {
		burst = DefaultBurst
	}
	if every <= 0 {
		every = DefaultEvery
	}
	if now == nil {
		now = time.Now
	}
	return &Handler{next: next, state: &state{burst: float64(burst), every: every, now: now, places: map[place]*bucket{}, where: map[uintptr]place{}}}
}

// Enabled reports what the wrapped handler does.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle passes r on unless its call site has used its allowance.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return h.next.Handle(ctx, r)
	}
	n, ok := h.state.allow(r.PC)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.next.Handle(ctx, r)
}

// allow takes a token for pc's bucket and reports whether there was one,
// and, when there was, how many records it refused since the last.
func (s *state) allow(pc uintptr) (int, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.where[pc]
	if !ok {
		if len(s.where) >= maxPlaces {
			clear(s.where) // never in practice: the program has fewer log calls
		}
		f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
		at = place{f.File, f.Line}
		s.where[pc] = at
	}
	b := s.places[at]
	if b == nil {
		if len(s.places) >= maxPlaces {
			clear(s.places) // as above; a reset only loses counts
		}
		b = &bucket{tokens: s.burst, last: now}
		s.places[at] = b
	}
	b.tokens = min(s.burst, b.tokens+float64(now.Sub(b.last))/float64(s.every))
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return 0, false
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return n, true
}

// WithAttrs returns a Handler whose records carry attrs, sharing this
// one's limits: a call site is limited however its logger was made.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup returns a Handler that qualifies later attributes with name,
// sharing this one's limits.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}
