package tui

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"lanchat/node/api"
)

// big is the fixture with a 100,000-message conversation with bob.
func big() *fakeAPI {
	f := newFake()
	bob, alice := ref(bobID, "bob"), ref(aliceID, "alice")
	es := make([]api.HistoryEntry, 0, 100_000)
	for i := range 100_000 {
		from, to := bob, alice
		if i%3 == 0 {
			from, to = alice, bob
		}
		es = append(es, api.HistoryEntry{ID: fmt.Sprintf("m%06d", i), From: from, To: to, Outgoing: from.ID == aliceID,
			Text: fmt.Sprintf("message %d: a line long enough to wrap once or twice in a pane of eighty columns, as chat does", i),
			Time: base.Add(time.Duration(i) * 20 * time.Second), State: "read"})
	}
	f.hist[bobID] = es
	return f
}

// Opening a conversation of 100,000 messages costs one page from the API
// and the rendering of one screen, whatever its length: from the key
// press to the frame.
func BenchmarkOpen100k(b *testing.B) {
	f := big()
	h := newHarness(b, f, 120, 40)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		h.keys("alt+1")
		h.m.convs[bobID].reset() // not held: opened as the first time
		b.StartTimer()
		h.keys("alt+3")
		if v := h.m.View(); len(v.Content) == 0 {
			b.Fatal("empty view")
		}
	}
}

// Scrolling back a screen at a time through the 100,000 messages: a
// PgUp and its frame, older pages fetched as they are reached.
func BenchmarkPgUp100k(b *testing.B) {
	f := big()
	h := newHarness(b, f, 120, 40)
	h.keys("alt+3")
	for b.Loop() {
		h.send(tea.KeyPressMsg{Code: tea.KeyPgUp})
		_ = h.m.View()
	}
}

// BenchmarkIdle runs the UI on a pipe for 10 s with nothing happening
// and reports the CPU the process used (the fake node costs nothing).
func BenchmarkIdle(b *testing.B) {
	f := newFake()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f, Options{}, pr, io.Discard) }()
	time.Sleep(time.Second) // started, first frames drawn
	const idle = 10 * time.Second
	var r0, r1 syscall.Rusage
	b.ResetTimer()
	for range b.N {
		syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		time.Sleep(idle)
		syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	}
	used := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(100*used.Seconds()/idle.Seconds(), "%-cpu")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
