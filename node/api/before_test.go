package api

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHistoryBefore(t *testing.T) {
	q, err := parseHistoryQuery("peer=bob&limit=5&before=01HXK2")
	if err != nil || q.Before != "01HXK2" || q.Peer != "bob" || q.Limit != 5 {
		t.Fatalf("parse = %+v, %v", q, err)
	}
	for _, c := range []struct{ name, raw string }{
		{"without peer", "before=01HXK2"},
		{"with search", "peer=bob&search=lunch&before=01HXK2"},
		{"too long", "peer=bob&before=" + strings.Repeat("A", MaxBeforeLen+1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseHistoryQuery(c.raw); !errors.Is(err, ErrInvalid) {
				t.Errorf("parse %q = %v, want invalid", c.raw, err)
			}
		})
	}
}
