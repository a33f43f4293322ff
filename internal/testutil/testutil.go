// Package testutil holds the helpers every package's tests use: waiting
// for a condition instead of sleeping, and a logger that writes to the
// test's log.
package testutil

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor fails the test unless cond becomes true within timeout.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// WaitForErr fails the test, with cond's last error, unless cond
// returns nil within timeout.
func WaitForErr(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Logger writes records at level and above to tb's log until the test
// ends, and drops them after: timers of libraries (memberlist's
// suspicion timers) outlive the code that started them, and logging after
// a test has ended panics. Benchmarks get a logger that discards.
func Logger(tb testing.TB, level slog.Level) *slog.Logger {
	if _, ok := tb.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	w := &writer{tb: tb}
	tb.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writer struct {
	tb   testing.TB
	mu   sync.Mutex // guards done, and orders lines
	done bool       // the test has ended
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
