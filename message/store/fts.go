package store

import (
	"strings"
	"unicode"
)

// ftsQuery turns a user's search text into an FTS5 query that matches
// bodies containing every word of it, literally: each whitespace-separated
// word becomes a quoted phrase (quotes inside doubled), so no input can be
// an FTS5 operator (AND, OR, NOT, NEAR, column filters, "-", "^", "+",
// parentheses) or a syntax error. A word ending in "*" becomes a prefix
// phrase ("lun"*). Words with no letter or digit, which the unicode61
// tokenizer would index as nothing, are left out; "" means nothing can
// match.
func ftsQuery(text string) string {
	text = strings.ToValidUTF8(strings.ReplaceAll(text, "\x00", " "), " ")
	var b strings.Builder
	for _, w := range strings.Fields(text) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if !strings.ContainsFunc(w, isTokenRune) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(w, `"`, `""`))
		b.WriteByte('"')
		if prefix {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// isTokenRune reports whether the unicode61 tokenizer keeps r in a token
// (its default categories: letters, numbers, private use).
func isTokenRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
}
