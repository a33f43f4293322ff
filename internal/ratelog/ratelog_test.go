package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTest(burst int, every time.Duration) (*slog.Logger, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), burst, every, clk.now)
	return slog.New(h), &buf, clk
}

func lines(b *bytes.Buffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A flood from one place is cut to the burst, then to the rate, and the
// line that gets through says how many were dropped; another place in the
// code is not silenced by it; debug lines are never limited.
func TestFloodFromOnePlaceIsLimited(t *testing.T) {
	log, buf, clk := newTest(3, time.Second)
	flood := func(n int) {
		for i := range n {
			log.Warn("bad packet", "from", i) // one call site
		}
	}
	flood(1000)
	if got := lines(buf); len(got) != 3 {
		t.Fatalf("%d lines from a flood of 1000, want the burst of 3", len(got))
	}
	log.Warn("something else") // another call site
	if got := lines(buf); len(got) != 4 || !strings.Contains(got[3], "something else") {
		t.Fatalf("another place was silenced: %q", got)
	}
	clk.t = clk.t.Add(1500 * time.Millisecond) // one token back
	flood(10)
	got := lines(buf)
	if len(got) != 5 || !strings.Contains(got[4], "suppressed=997") {
		t.Fatalf("after the refill: %q, want one line saying 997 were suppressed", got)
	}
	buf.Reset()
	for range 100 {
		log.Debug("chatter")
	}
	if got := lines(buf); len(got) != 100 {
		t.Fatalf("debug lines limited: %d of 100", len(got))
	}
}

// Loggers made from one another share the limit of a call site.
func TestDerivedLoggersShareTheLimit(t *testing.T) {
	log, buf, _ := newTest(2, time.Hour)
	for i := range 50 {
		log.With("peer", i).WithGroup("g").Warn("refused")
	}
	if got := lines(buf); len(got) != 2 {
		t.Fatalf("%d lines, want 2", len(got))
	}
}
