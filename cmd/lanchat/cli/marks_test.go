package cli

import (
	"strings"
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

// A person reading the contact book, or peers, sees who is trusted and a
// warning on a name that is not the trusted one's; trust sends the id.
func TestContactsShowTrustAndWarnings(t *testing.T) {
	f := newFakeNode()
	f.contacts = []api.Contact{
		{ID: bobID, Name: "bob", Fingerprint: "11111 22222 33333 44444 55555 66666", Trusted: true},
		{ID: carlID, Name: "bob\u202e", Fingerprint: "77777 88888 99999 00000 11111 22222", Warning: "not the bob you trust (BBBBBBB)"},
	}
	dir := served(t, f)
	code, out, errs := lanchat(t, dir, "contacts")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"bob  ", "yes (first seen)", "11111 22222 33333 44444 55555 66666",
		`bob\u202e [!not the bob you trust (BBBBBBB)]`} {
		if !strings.Contains(out, want) {
			t.Errorf("contacts output lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = lanchat(t, dir, "trust", "CCCC")
	if code != exitOK || f.trustReq.ID != "CCCC" || !strings.Contains(out, "trusted") {
		t.Fatalf("trust: exit %d, sent %+v, out %q, err %q", code, f.trustReq, out, errs)
	}
	if code, _, _ := lanchat(t, dir, "trust"); code != exitUsage {
		t.Errorf("trust with no id: exit %d, want usage", code)
	}
}
