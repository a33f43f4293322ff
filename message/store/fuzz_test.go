package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSearch: any text typed into the search box is a valid query. It
// runs ftsQuery, the decoder of user search text, against a real index.
func FuzzSearch(f *testing.F) {
	for _, q := range hostileSearches {
		f.Add(q)
	}
	f.Add("lunch")
	f.Add(`lunch*`)
	s, err := Open(filepath.Join(f.TempDir(), "history.db"), DefaultOptions())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if _, err := s.AddReceived(ctx, bob.msg(f, alice, at(1), `lunch "at" NEAR(noon) -soon * ok`)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		recs, err := s.History(ctx, Query{Search: text, Limit: 10})
		if err != nil {
			t.Fatalf("History(Search: %q) = %v (match %q)", text, err, ftsQuery(text))
		}
		if strings.TrimSpace(text) == "lunch" && len(recs) != 1 {
			t.Errorf("search %q found %d messages", text, len(recs))
		}
	})
}
