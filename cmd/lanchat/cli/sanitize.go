package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"lanchat/node/api"
)

// Everything a peer says reaches the terminal through these: names,
// status texts and messages can carry ANSI escapes (which would drive the
// terminal), bidi overrides (which reorder what a person reads, so "gpj.exe"
// passes for "exe.jpg") and other invisible characters. They are shown as
// visible escapes instead, never raw.

// invisible reports runes that must not reach a terminal raw.
func invisible(r rune) bool {
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

// cleanLine makes s safe to print on one line.
func cleanLine(s string) string {
	if !needsCleaning(s, false) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if invisible(r) {
			escapeRune(&b, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanLines is cleanLine but keeps line breaks, indenting the lines after
// the first so a message cannot pass its second line off as another event.
func cleanLines(s string) string {
	if !needsCleaning(s, true) {
		return s
	}
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteString("\n    ")
		}
		line = strings.ReplaceAll(line, "\t", "    ")
		b.WriteString(cleanLine(line))
	}
	return b.String()
}

func needsCleaning(s string, multiline bool) bool {
	for _, r := range s {
		if invisible(r) {
			return true
		}
	}
	return false
}

// writeJSON writes v as one line of JSON. encoding/json already escapes
// control characters; this also escapes format characters (bidi
// overrides, zero-width joiners) and C1 controls, so a JSON line shown in a terminal
// cannot be reordered by them either. Consumers decode them unchanged.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(escapeFormatChars(buf.Bytes()))
	return err
}

// jsonEscapes are the runes encoding/json leaves raw that a terminal acts
// on: C1 controls and format characters.
func jsonEscapes(r rune) bool {
	return r >= 0x80 && r != utf8.RuneError && invisible(r)
}

func escapeFormatChars(b []byte) []byte {
	if !bytes.ContainsFunc(b, jsonEscapes) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if jsonEscapes(r) {
			if r > 0xFFFF {
				r1, r2 := utf16.EncodeRune(r)
				out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// displayName is a peer's name made safe for a terminal, with the warning
// its claim to the name carries, if any: a name that is not the trusted
// contact's is never shown bare.
func displayName(name, warning string) string {
	if warning == "" {
		return cleanLine(name)
	}
	return cleanLine(name) + " [!" + cleanLine(warning) + "]"
}

// refName is displayName of a reference.
func refName(r api.PeerRef) string { return displayName(r.Name, r.Warning) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
