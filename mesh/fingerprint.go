package mesh

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
)

// Fingerprint is a peer id in a form two people can compare by reading
// it out: six groups of five digits (about 100 bits of the key's SHA-256,
// as Signal's safety numbers are digit groups). It is derived from the id
// alone, so anyone can compute a contact's and check it against what
// that person reads from their own screen.
func Fingerprint(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%q is not a peer id", id)
	}
	sum, err := idEncoding.DecodeString(id)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i := range 6 {
		if i > 0 {
			b.WriteByte(' ')
		}
		var chunk [8]byte
		copy(chunk[3:], sum[i*5:i*5+5]) // 40 bits
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return b.String(), nil
}

// blankRunes are letters that draw nothing: a name made of them (and
// spaces) looks empty, or like another name with them in it. Hangul
// fillers and the blank braille pattern are the ones seen in impersonation
// (they pass as letters); the rest of what draws nothing is a space, a
// control or format character, or a mark, which ValidName's checks
// already cover.
var blankRunes = map[rune]bool{
	'\u115F': true, // HANGUL CHOSEONG FILLER
	'\u1160': true, // HANGUL JUNGSEONG FILLER
	'\u3164': true, // HANGUL FILLER
	'\uFFA0': true, // HALFWIDTH HANGUL FILLER
	'\u2800': true, // BRAILLE PATTERN BLANK
	'\u17B4': true, // KHMER VOWEL INHERENT AQ
	'\u17B5': true, // KHMER VOWEL INHERENT AA
}

// visibleRune reports whether r draws something a person can read: a
// letter, digit, symbol or punctuation that is not a blank.
func visibleRune(r rune) bool {
	return !blankRunes[r] && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsSymbol(r) || unicode.IsPunct(r))
}

// hasBlankRune reports whether s holds a letter that draws nothing.
func hasBlankRune(s string) bool {
	for _, r := range s {
		if blankRunes[r] {
			return true
		}
	}
	return false
}

// hasVisibleRune reports whether s has at least one rune a person can see.
func hasVisibleRune(s string) bool {
	for _, r := range s {
		if visibleRune(r) {
			return true
		}
	}
	return false
}
