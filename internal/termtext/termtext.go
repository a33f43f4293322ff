// Package termtext makes text from the network safe to show on a
// terminal. Names, status texts and messages can carry ANSI escapes
// (which would drive the terminal), bidi overrides (which reorder what a
// person reads, so "gpj.exe" passes for "exe.jpg") and other invisible
// characters; Line and Lines show them as visible escapes instead. The
// command line and the terminal UI both print through it.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Invisible reports runes that must not reach a terminal raw.
func Invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) || r == utf8.RuneError
}

func escapeRune(b *strings.Builder, r rune) {
	switch {
	case r == utf8.RuneError:
		b.WriteRune('\uFFFD')
	case r < 0x80:
		fmt.Fprintf(b, `\x%02x`, r)
	case r <= 0xFFFF:
		fmt.Fprintf(b, `\u%04x`, r)
	default:
		fmt.Fprintf(b, `\U%08x`, r)
	}
}

// Line makes s safe to print on one line: every invisible rune, line
// breaks included, becomes its visible escape (\x1b, \u202e).
func Line(s string) string {
	if !needsCleaning(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if Invisible(r) {
			escapeRune(&b, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Lines is Line but keeps line breaks, indenting the lines after the
// first so a message cannot pass its second line off as another event.
func Lines(s string) string {
	if !needsCleaning(s) {
		return s
	}
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteString("\n    ")
		}
		line = strings.ReplaceAll(line, "\t", "    ")
		b.WriteString(Line(line))
	}
	return b.String()
}

// Split is Lines without the indent, for a front end that lays out the
// lines of a message itself: each element is one line, made safe.
func Split(s string) []string {
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = Line(strings.ReplaceAll(p, "\t", "    "))
	}
	return parts
}

func needsCleaning(s string) bool {
	for _, r := range s {
		if Invisible(r) {
			return true
		}
	}
	return false
}
