package store

import (
	"bytes"
	"context"
	"errors"
	"os"
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

// FuzzStateText: a state's text (--json input) decodes only to a valid
// state, and back to the same text.
func FuzzStateText(f *testing.F) {
	for _, s := range stateNames {
		f.Add(s)
	}
	f.Add("Read")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		var st State
		if err := st.UnmarshalText([]byte(text)); err != nil {
			return
		}
		back, err := st.MarshalText()
		if !st.Valid() || err != nil || string(back) != text {
			t.Fatalf("%q decoded to %v, which encodes as %q (%v)", text, st, back, err)
		}
	})
}

// FuzzCheckHeader: whatever a file's first bytes are, judging them
// (parseHeader, the first thing Open does with an existing file) never
// panics and fails only with the errors Open documents.
func FuzzCheckHeader(f *testing.F) {
	good := filepath.Join(f.TempDir(), "good.db")
	s, err := Open(good, DefaultOptions())
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	h, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h[:100])
	f.Add(h[:50])
	f.Add([]byte(sqliteMagic))
	f.Add([]byte("not a database at all"))
	f.Add([]byte{}) // an empty file: checkHeader once returned io.EOF for it
	f.Fuzz(func(t *testing.T, b []byte) {
		err := parseHeader(b[:min(len(b), 100)])
		if err != nil && !errors.Is(err, ErrNotLanchat) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) {
			t.Fatalf("parseHeader: %v", err)
		}
		if err == nil && (len(b) < 100 || !bytes.HasPrefix(b, []byte(sqliteMagic))) {
			t.Fatalf("accepted a header of %d bytes: %q", len(b), b[:min(len(b), 16)])
		}
	})
}

// An empty or short file is judged, not an I/O error (io.EOF once).
func TestCheckHeaderShortFile(t *testing.T) {
	for _, n := range []int{0, 1, 99} {
		path := filepath.Join(t.TempDir(), "short.db")
		if err := os.WriteFile(path, []byte(sqliteMagic + strings.Repeat("x", 100))[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkHeader(path); !errors.Is(err, ErrNotLanchat) {
			t.Errorf("%d bytes: %v, want ErrNotLanchat", n, err)
		}
	}
}
