package cli

import (
	"testing"
	"time"

	"lanchat/node/api"
)

// A person reading history is told when a message's time is not when it
// was written: a clock far ahead (shown where it arrived), or a message
// that came long after its time (from 2024, today).
func TestHistorySaysWhereATimeComesFrom(t *testing.T) {
	f := newFakeNode()
	t1 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	arrived := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	claimed := arrived.Add(time.Hour)
	f.history = []api.HistoryEntry{
		{ID: "a", From: bobRef, To: selfRef, Text: "old", Time: t1, State: "delivered", Arrived: &arrived},
		{ID: "b", From: bobRef, To: selfRef, Text: "ahead", Time: arrived, State: "delivered", ClaimedTime: &claimed},
		{ID: "c", From: bobRef, To: selfRef, Text: "plain", Time: arrived.Add(time.Second), State: "delivered"},
	}
	dir := served(t, f)
	code, out, errs := lanchat(t, dir, "history", "bob")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	ts := func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
	want := ts(t1) + " bob: old  (arrived " + ts(arrived) + ")\n" +
		ts(arrived) + " bob: ahead  (their clock said " + ts(claimed) + ")\n" +
		ts(arrived.Add(time.Second)) + " bob: plain\n"
	if out != want {
		t.Errorf("history:\n%s\nwant:\n%s", out, want)
	}
}
