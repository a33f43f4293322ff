package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ProtocolVersion is the lanchat wire protocol this build speaks. It is
// carried in mDNS TXT records and in gossip metadata.
const ProtocolVersion = 1

// Limits on what a peer may say about itself. memberlist panics on metadata
// over 512 bytes (MetaMaxSize), so Meta.Encode refuses anything larger long
// before it reaches memberlist.
const (
	MaxNameLen   = 64  // bytes of display name
	MaxStatusLen = 160 // bytes of status text
	MaxMetaLen   = 512 // memberlist.MetaMaxSize
)

// State is a person's availability as others see it.
type State uint8

// The states a running peer can announce. Offline and Left are never
// announced: they are what the others conclude when a peer disappears
// without a word or says goodbye.
const (
	Available State = iota
	Away
	Busy
	Offline
	Left
)

var stateNames = [...]string{"available", "away", "busy", "offline", "left"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState reads a state a user may set: available, away or busy.
func ParseState(s string) (State, error) {
	for i, n := range stateNames[:Offline] {
		if s == n {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want available, away or busy)", s)
}

// Meta is what a node gossips about itself in memberlist's node metadata.
type Meta struct {
	Proto   uint8  // protocol version
	TLSPort uint16 // where its secure streams listen
	Started int64  // start time, unix milliseconds; orders incarnations of one peer
	State   State  // Available, Away or Busy
	Name    string // display name
	Status  string // status text
}

const (
	metaMagic   = 'L'
	metaVersion = 1
	metaFixed   = 1 + 1 + 1 + 2 + 8 + 1 // magic, version, proto, tls port, started, state
)

// ErrMeta is returned for metadata that is malformed or over a limit.
var ErrMeta = errors.New("invalid node metadata")

// Encode lays out the metadata (documented in PROTOCOL.md):
//
//	'L' | meta version (1) | proto | TLS port (u16 BE) | started (i64 BE, unix ms) |
//	state | name length (u8) | name | status length (u8) | status
//
// Bytes after the status are reserved for later versions and ignored.
func (m Meta) Encode() ([]byte, error) {
	if err := ValidName(m.Name); err != nil {
		return nil, err
	}
	if err := ValidStatus(m.Status); err != nil {
		return nil, err
	}
	if m.State > Busy {
		return nil, fmt.Errorf("%w: state %v cannot be announced", ErrMeta, m.State)
	}
	b := make([]byte, 0, metaFixed+2+len(m.Name)+len(m.Status))
	b = append(b, metaMagic, metaVersion, m.Proto)
	b = binary.BigEndian.AppendUint16(b, m.TLSPort)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Started))
	b = append(b, byte(m.State), byte(len(m.Name)))
	b = append(b, m.Name...)
	b = append(b, byte(len(m.Status)))
	b = append(b, m.Status...)
	if len(b) > MaxMetaLen {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMeta, len(b), MaxMetaLen)
	}
	return b, nil
}

// DecodeMeta parses metadata received from the network. It never trusts a
// length it has not checked against what is there.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MaxMetaLen {
		return m, fmt.Errorf("%w: %d bytes", ErrMeta, len(b))
	}
	if len(b) < metaFixed+2 || b[0] != metaMagic {
		return m, fmt.Errorf("%w: not lanchat metadata", ErrMeta)
	}
	if b[1] != metaVersion {
		return m, fmt.Errorf("%w: metadata version %d", ErrMeta, b[1])
	}
	m.Proto = b[2]
	m.TLSPort = binary.BigEndian.Uint16(b[3:5])
	m.Started = int64(binary.BigEndian.Uint64(b[5:13]))
	m.State = State(b[13])
	rest := b[metaFixed:]
	name, rest, ok := lenPrefixed(rest)
	if !ok {
		return m, fmt.Errorf("%w: truncated name", ErrMeta)
	}
	status, _, ok := lenPrefixed(rest)
	if !ok {
		return m, fmt.Errorf("%w: truncated status", ErrMeta)
	}
	m.Name, m.Status = string(name), string(status)
	if m.State > Busy {
		return m, fmt.Errorf("%w: state %d", ErrMeta, b[13])
	}
	if m.TLSPort == 0 {
		return m, fmt.Errorf("%w: no TLS port", ErrMeta)
	}
	if err := ValidName(m.Name); err != nil {
		return m, err
	}
	if err := ValidStatus(m.Status); err != nil {
		return m, err
	}
	return m, nil
}

func lenPrefixed(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}

// ValidName checks a display name: 1 to MaxNameLen bytes of UTF-8 with no
// control, format (bidi override) or other invisible characters, and not
// only spaces. Names are shown to people and used to address messages, so a
// name that could disguise itself as another is refused at the source.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty name", ErrMeta)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: name is %d bytes, limit %d", ErrMeta, len(s), MaxNameLen)
	}
	if err := validText(s); err != nil {
		return fmt.Errorf("%w: name %w", ErrMeta, err)
	}
	if hasBlankRune(s) || !hasVisibleRune(s) {
		return fmt.Errorf("%w: blank name (it must show a letter, digit or sign, and no filler that draws nothing)", ErrMeta)
	}
	return nil
}

// ValidStatus checks a status text: at most MaxStatusLen bytes, the same
// character rules as names, and may be empty.
func ValidStatus(s string) error {
	if len(s) > MaxStatusLen {
		return fmt.Errorf("%w: status text is %d bytes, limit %d", ErrMeta, len(s), MaxStatusLen)
	}
	if err := validText(s); err != nil {
		return fmt.Errorf("%w: status text %w", ErrMeta, err)
	}
	return nil
}

var errBadText = errors.New("has invalid or control characters")

func validText(s string) error {
	if !utf8.ValidString(s) {
		return errBadText
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return errBadText
		}
	}
	return nil
}
