package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"

	"lanchat/internal/termtext"
	"lanchat/node/api"
)

// Everything a peer says reaches the terminal through these (package
// termtext): names, status texts and messages are shown with their
// escapes, bidi overrides and invisible characters as visible escapes.

func invisible(r rune) bool { return termtext.Invisible(r) }

// cleanLine makes s safe to print on one line.
func cleanLine(s string) string { return termtext.Line(s) }

// cleanLines is cleanLine but keeps line breaks, indenting the lines after
// the first so a message cannot pass its second line off as another event.
func cleanLines(s string) string { return termtext.Lines(s) }

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
