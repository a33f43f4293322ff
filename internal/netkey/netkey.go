// Package netkey is the office key: a secret shared by every node of one
// closed network, from which each layer takes its own key.
//
// A key is 144 random bits with a 16-bit check, written for people as
// "lanchat-" and eight groups of four characters of Crockford's base32
// (no I, L, O or U to misread; typing them, or lower case, or spaces
// instead of dashes, is forgiven; a typo is caught by the check):
//
//	lanchat-7M2Q-K9XD-3RFA-W0HN-C4TB-85ZE-PJ6G-Y1VS
//
// A line of a key file that is not such a key is a passphrase, stretched
// with Argon2id (memory-hard: 64 MiB, 3 passes) so that guessing one costs
// an attacker what it costs a node to start, for every guess.
//
// From the 32-byte secret (the key's bits, or the stretched passphrase),
// HKDF-SHA256 derives one key per use, each with its own label, so that no
// layer's key says anything about another's: the gossip encryption key
// (memberlist's keyring, AES-256-GCM), the key that proves a stream's
// network (an HMAC over the TLS exporter), and a short public tag the
// mDNS advertisement carries so that nodes of other networks ignore each
// other without connecting. The tag and memberlist's label identify the
// network, not the key: they are derived one way from it.
package netkey

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"lanchat/internal/fsutil"
)

const (
	prefix     = "lanchat-"
	secretBits = 144
	rawLen     = secretBits/8 + 2 // the secret and its check: 20 bytes, 32 characters
	groups     = 8
	// MaxKeys is how many keys a node may hold at once: the one it uses
	// and, during a change-over, the next (or the last).
	MaxKeys = 2
	// maxFile bounds a key file: a key is 47 bytes, a passphrase a line.
	maxFile = 4096
	// MinPassphrase is the shortest passphrase accepted at all.
	MinPassphrase = 8
)

// alphabet is Crockford's base32.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Errors.
var (
	ErrMalformed   = errors.New("not a lanchat network key")
	ErrCheck       = errors.New("the key's check does not match: a character is mistyped")
	ErrUnsafeFile  = errors.New("the key file may be read or written by other users")
	ErrShortPhrase = fmt.Errorf("passphrase shorter than %d characters", MinPassphrase)
)

// Key is one network key, ready to use.
type Key struct {
	secret [32]byte
	// Passphrase is true when the key came from a passphrase.
	Passphrase bool
	// Weak is set when that passphrase is easy to guess: say so.
	Weak string
}

// Generate makes a new key and returns it as text.
func Generate() (string, error) {
	var secret [secretBits / 8]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", err
	}
	return format(secret), nil
}

// format writes a secret and its check as text.
func format(secret [secretBits / 8]byte) string {
	var raw [rawLen]byte
	copy(raw[:], secret[:])
	sum := sha256.Sum256(secret[:])
	copy(raw[len(secret):], sum[:2])
	// 160 bits, 5 at a time, most significant first.
	var chars [rawLen * 8 / 5]byte
	var acc uint64
	bits, n := 0, 0
	for _, b := range raw {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			chars[n] = alphabet[acc>>bits&31]
			n++
		}
	}
	var b strings.Builder
	b.WriteString(prefix)
	for i := range groups {
		if i > 0 {
			b.WriteByte('-')
		}
		b.Write(chars[i*4 : i*4+4])
	}
	return b.String()
}

// Parse reads a key as Generate writes it, forgiving case, spaces or
// dashes between groups, and the letters Crockford's base32 leaves out
// (I and L read as 1, O as 0).
func Parse(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return Key{}, ErrMalformed
	}
	var chars []byte
	for _, r := range s[len(prefix):] {
		switch r = unicode.ToUpper(r); {
		case r == '-' || r == ' ':
			continue
		case r == 'I' || r == 'L':
			r = '1'
		case r == 'O':
			r = '0'
		}
		i := strings.IndexRune(alphabet, r)
		if i < 0 || len(chars) == groups*4 {
			return Key{}, ErrMalformed
		}
		chars = append(chars, byte(i))
	}
	if len(chars) != groups*4 {
		return Key{}, ErrMalformed
	}
	var raw [rawLen]byte
	var acc uint64
	bits, n := 0, 0
	for _, c := range chars {
		acc = acc<<5 | uint64(c)
		bits += 5
		if bits >= 8 {
			bits -= 8
			raw[n] = byte(acc >> bits)
			n++
		}
	}
	sum := sha256.Sum256(raw[:secretBits/8])
	if !bytes.Equal(sum[:2], raw[secretBits/8:]) {
		return Key{}, ErrCheck
	}
	// 32 bytes of input keying material for HKDF.
	return Key{secret: sha256.Sum256(raw[:secretBits/8])}, nil
}

// FromPassphrase stretches a passphrase into a key. The salt is fixed
// (every node must derive the same key from the same phrase, with nothing
// else shared), so the cost of Argon2id is what stands between a guesser
// and the network: 64 MiB and 3 passes, about a tenth of a second here.
func FromPassphrase(phrase string) (Key, error) {
	phrase = strings.TrimSpace(phrase)
	if utf8.RuneCountInString(phrase) < MinPassphrase {
		return Key{}, ErrShortPhrase
	}
	k := Key{Passphrase: true, Weak: weakness(phrase)}
	copy(k.secret[:], argon2.IDKey([]byte(phrase), []byte("lanchat network passphrase v1"), 3, 64<<10, 1, 32))
	return k, nil
}

// weakness says why a passphrase is easy to guess, or "" when it is not
// obviously so. This is no strength meter: it catches the short, the
// repetitive and the one-word, and says to use lanchat keygen.
func weakness(p string) string {
	distinct := map[rune]bool{}
	for _, r := range strings.ToLower(p) {
		distinct[r] = true
	}
	words := len(strings.Fields(p))
	switch {
	case utf8.RuneCountInString(p) < 16 && words < 4:
		return "it is shorter than 16 characters"
	case len(distinct) < 8:
		return "it repeats a few characters"
	case words < 3 && utf8.RuneCountInString(p) < 20:
		return "it is one or two words"
	}
	return ""
}

// ParseLine reads one line of a key file: a key, or else a passphrase.
func ParseLine(line string) (Key, error) {
	line = strings.TrimSpace(line)
	if len(line) >= len(prefix) && strings.EqualFold(line[:len(prefix)], prefix) {
		return Parse(line)
	}
	return FromPassphrase(line)
}

// Ring is the keys a node holds: the first is the one it speaks with; it
// also accepts the others (a change-over: hold old and new, then drop the
// old).
type Ring []Key

// ReadFile reads a key file: one key or passphrase per line (blank lines
// and lines starting with # are skipped), at most MaxKeys. Like an SSH
// private key, the file must not be readable or writable by group or
// others, nor be a symbolic link.
func ReadFile(path string) (Ring, error) {
	f, err := fsutil.OpenNoFollow(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("network key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("network key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("network key file %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("network key file %s (mode %#o): %w; chmod 600 %s", path, fi.Mode().Perm(), ErrUnsafeFile, path)
	}
	if fi.Size() > maxFile {
		return nil, fmt.Errorf("network key file %s: %d bytes, more than a key file holds", path, fi.Size())
	}
	return ReadRing(io.LimitReader(f, maxFile))
}

// ReadRing reads keys as ReadFile does, from r.
func ReadRing(r io.Reader) (Ring, error) {
	var ring Ring
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxFile)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(ring) == MaxKeys {
			return nil, fmt.Errorf("line %d: more than %d keys (one in use, one for a change-over)", n, MaxKeys)
		}
		k, err := ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		ring = append(ring, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ring) == 0 {
		return nil, errors.New("no key in the file")
	}
	return ring, nil
}

func (k Key) derive(info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, k.secret[:], nil, info, n)
	if err != nil {
		panic(err) // only for n beyond HKDF's limit
	}
	return out
}

// GossipKey is the 32-byte AES key for memberlist's keyring.
func (k Key) GossipKey() []byte { return k.derive("lanchat gossip v1", 32) }

// StreamKey is the HMAC key that proves a TLS stream's network.
func (k Key) StreamKey() []byte { return k.derive("lanchat stream v1", 32) }

// Tag is the network's public name: 8 hex digits, carried by the mDNS
// advertisement and memberlist's label. Two nodes with the same tag are
// (almost surely) of one network; the tag does not reveal the key.
func (k Key) Tag() string { return hex.EncodeToString(k.derive("lanchat tag v1", 4)) }

// Label is memberlist's label for the network: every gossip packet and
// stream carries it, and a node drops those with another label unread.
func (k Key) Label() string { return "lanchat/" + k.Tag() }
