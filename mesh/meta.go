package mesh

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unicode"
	"unicode/utf8"
)

// ProtocolVersion is the lanchat wire protocol this build speaks. It is
// carried in mDNS TXT records and in gossip metadata.
const ProtocolVersion = 2

// Limits on what a peer may say about itself. memberlist panics on metadata
// over 512 bytes (MetaMaxSize), so Meta.Encode refuses anything larger long
// before it reaches memberlist.
const (
	MaxNameLen   = 64  // bytes of display name
	MaxStatusLen = 160 // bytes of status text
	MaxMetaLen   = 512 // memberlist.MetaMaxSize
	// MaxMetaAddrs bounds the addresses a node lists in its metadata:
	// eight IPv6 addresses fit beside the longest name and status.
	MaxMetaAddrs = 8
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
// It travels signed by the node's identity key (Sign, VerifyMeta), so no
// one else can speak for it.
type Meta struct {
	Proto   uint8  // protocol version
	TLSPort uint16 // where its secure streams listen
	Started int64  // start time, unix milliseconds; orders incarnations of one peer
	// Seq counts this run's metadata, from 1, one more at each change: a
	// receiver never takes a lower one after a higher one (a replay).
	Seq    uint32
	State  State          // Available, Away or Busy
	Name   string         // display name
	Status string         // status text
	Gossip netip.AddrPort // the memberlist address this run advertises
	// Addrs are every address the node is reachable on (all its LAN
	// interfaces, IPv4 and IPv6, link-local without a zone), best first;
	// the zero Addr ends the list. An array keeps Meta comparable.
	Addrs [MaxMetaAddrs]netip.Addr
	Key   [ed25519.PublicKeySize]byte // the identity's public key; filled by Sign and DecodeMeta
}

const (
	metaMagic   = 'L'
	metaVersion = 2
	metaFixed   = 1 + 1 + 1 + 2 + 8 + 4 + 1 // magic, version, proto, tls port, started, seq, state
	metaTail    = ed25519.PublicKeySize + ed25519.SignatureSize
	// metaContext starts what the signature covers, so that no other
	// message signed by an identity key can pass for metadata.
	metaContext = "lanchat meta v2\x00"
)

// ErrMeta is returned for metadata that is malformed or over a limit.
var ErrMeta = errors.New("invalid node metadata")

// ErrMetaSignature is returned for metadata that is well formed but not
// signed by the key of the peer id it claims.
var ErrMetaSignature = fmt.Errorf("%w: bad signature", ErrMeta)

// Sign lays out the metadata (documented in PROTOCOL.md) and signs it for
// the run member ("<id>-<nonce>") with key:
//
//	'L' | meta version (2) | proto | TLS port (u16 BE) | started (i64 BE, unix ms) |
//	seq (u32 BE) | state | name length (u8) | name | status length (u8) | status |
//	gossip address length (u8: 4 or 16) | address | gossip port (u16 BE) |
//	address count (u8, 0 to 8) | per address: length (u8: 4 or 16) | address |
//	public key (32) | signature (64)
//
// The signature (Ed25519) covers metaContext, the member name's length
// (u8) and the member name, then every byte before the signature. Bytes
// between the address list and the key are reserved for later versions;
// metadata that ends at the gossip port (older builds) has no list.
func (m Meta) Sign(member string, key ed25519.PrivateKey) ([]byte, error) {
	copy(m.Key[:], key.Public().(ed25519.PublicKey))
	body, err := m.body()
	if err != nil {
		return nil, err
	}
	if len(member) > maxMemberName {
		return nil, fmt.Errorf("%w: member name of %d bytes", ErrMeta, len(member))
	}
	b := append(body, ed25519.Sign(key, signedMeta(member, body))...)
	if len(b) > MaxMetaLen {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMeta, len(b), MaxMetaLen)
	}
	return b, nil
}

// body is the metadata up to and including the key.
func (m Meta) body() ([]byte, error) {
	if err := ValidName(m.Name); err != nil {
		return nil, err
	}
	if err := ValidStatus(m.Status); err != nil {
		return nil, err
	}
	if m.State > Busy {
		return nil, fmt.Errorf("%w: state %v cannot be announced", ErrMeta, m.State)
	}
	addr := m.Gossip.Addr().Unmap()
	if !addr.IsValid() || addr.Zone() != "" || m.Gossip.Port() == 0 {
		return nil, fmt.Errorf("%w: gossip address %v", ErrMeta, m.Gossip)
	}
	ab := addr.AsSlice()
	b := make([]byte, 0, metaFixed+2+len(m.Name)+len(m.Status)+1+len(ab)+2+metaTail)
	b = append(b, metaMagic, metaVersion, m.Proto)
	b = binary.BigEndian.AppendUint16(b, m.TLSPort)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Started))
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	b = append(b, byte(m.State), byte(len(m.Name)))
	b = append(b, m.Name...)
	b = append(b, byte(len(m.Status)))
	b = append(b, m.Status...)
	b = append(b, byte(len(ab)))
	b = append(b, ab...)
	b = binary.BigEndian.AppendUint16(b, m.Gossip.Port())
	addrs := m.AddrList()
	b = append(b, byte(len(addrs)))
	for _, a := range addrs {
		if !validMetaAddr(a) {
			return nil, fmt.Errorf("%w: address %v", ErrMeta, a)
		}
		s := a.AsSlice()
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = append(b, m.Key[:]...)
	return b, nil
}

// AddrList is Addrs up to its first zero Addr.
func (m Meta) AddrList() []netip.Addr {
	var out []netip.Addr
	for _, a := range m.Addrs {
		if !a.IsValid() {
			break
		}
		out = append(out, a)
	}
	return out
}

// validMetaAddr: an address another host could reach, as it travels
// (IPv4 as 4 bytes, no zone).
func validMetaAddr(a netip.Addr) bool {
	return a.IsValid() && !a.Is4In6() && a.Zone() == "" && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback()
}

func signedMeta(member string, body []byte) []byte {
	msg := make([]byte, 0, len(metaContext)+1+len(member)+len(body))
	msg = append(msg, metaContext...)
	msg = append(msg, byte(len(member)))
	msg = append(msg, member...)
	return append(msg, body...)
}

// DecodeMeta parses metadata received from the network. It never trusts a
// length it has not checked against what is there. It checks the form
// only: VerifyMeta also checks who signed it.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MaxMetaLen {
		return m, fmt.Errorf("%w: %d bytes", ErrMeta, len(b))
	}
	if len(b) < 2 || b[0] != metaMagic {
		return m, fmt.Errorf("%w: not lanchat metadata", ErrMeta)
	}
	if b[1] != metaVersion {
		return m, fmt.Errorf("%w: metadata version %d", ErrMeta, b[1])
	}
	if len(b) < metaFixed+2+1+4+2+metaTail {
		return m, fmt.Errorf("%w: truncated", ErrMeta)
	}
	m.Proto = b[2]
	m.TLSPort = binary.BigEndian.Uint16(b[3:5])
	m.Started = int64(binary.BigEndian.Uint64(b[5:13]))
	m.Seq = binary.BigEndian.Uint32(b[13:17])
	m.State = State(b[17])
	copy(m.Key[:], b[len(b)-metaTail:])
	rest := b[metaFixed : len(b)-metaTail]
	name, rest, ok := lenPrefixed(rest)
	if !ok {
		return m, fmt.Errorf("%w: truncated name", ErrMeta)
	}
	status, rest, ok := lenPrefixed(rest)
	if !ok {
		return m, fmt.Errorf("%w: truncated status", ErrMeta)
	}
	ab, rest, ok := lenPrefixed(rest)
	if !ok || len(rest) < 2 {
		return m, fmt.Errorf("%w: truncated gossip address", ErrMeta)
	}
	addr, ok := netip.AddrFromSlice(ab)
	if !ok || len(ab) != 4 && len(ab) != 16 || addr.Is4In6() {
		return m, fmt.Errorf("%w: gossip address of %d bytes", ErrMeta, len(ab))
	}
	m.Gossip = netip.AddrPortFrom(addr, binary.BigEndian.Uint16(rest[:2]))
	if rest = rest[2:]; len(rest) > 0 {
		n := int(rest[0])
		if n > MaxMetaAddrs {
			return m, fmt.Errorf("%w: %d addresses, at most %d", ErrMeta, n, MaxMetaAddrs)
		}
		rest = rest[1:]
		for i := range n {
			var ab []byte
			if ab, rest, ok = lenPrefixed(rest); !ok {
				return m, fmt.Errorf("%w: truncated address list", ErrMeta)
			}
			a, ok := netip.AddrFromSlice(ab)
			if !ok || len(ab) != 4 && len(ab) != 16 || !validMetaAddr(a) {
				return m, fmt.Errorf("%w: bad address in the list", ErrMeta)
			}
			m.Addrs[i] = a
		}
	}
	m.Name, m.Status = string(name), string(status)
	if m.State > Busy {
		return m, fmt.Errorf("%w: state %d", ErrMeta, b[17])
	}
	if m.TLSPort == 0 || m.Gossip.Port() == 0 {
		return m, fmt.Errorf("%w: no TLS or gossip port", ErrMeta)
	}
	if m.Seq == 0 {
		return m, fmt.Errorf("%w: sequence number 0", ErrMeta)
	}
	if err := ValidName(m.Name); err != nil {
		return m, err
	}
	if err := ValidStatus(m.Status); err != nil {
		return m, err
	}
	return m, nil
}

// VerifyMeta decodes metadata gossiped for the run member and checks that
// it is signed by the key whose id member names. Only then is any of it
// more than a stranger's claim.
func VerifyMeta(member string, b []byte) (Meta, error) {
	id, ok := splitMember(member)
	if !ok {
		return Meta{}, fmt.Errorf("%w: not a lanchat member name", ErrMeta)
	}
	m, err := DecodeMeta(b)
	if err != nil {
		return m, err
	}
	if IDFromPublicKey(m.Key[:]) != id {
		return m, fmt.Errorf("%w: key is not %s's", ErrMetaSignature, ShortID(id))
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	if !ed25519.Verify(m.Key[:], signedMeta(member, body), sig) {
		return m, ErrMetaSignature
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
