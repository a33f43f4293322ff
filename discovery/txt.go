package discovery

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits on what a TXT record may carry. Everything received is checked
// against them before it is used.
const (
	// MaxTXTString is the longest single TXT string (RFC 6763 §6.1).
	MaxTXTString = 255
	// MaxTXTStrings is the most strings a TXT record may have; a record
	// with more is rejected as a whole.
	MaxTXTStrings = 32
	// MaxAddrs is the most addresses the addrs key may list.
	MaxAddrs = 16
	// MaxNetworkLen is the longest network tag.
	MaxNetworkLen = 64
	// MaxProto is the highest protocol version the v key may carry.
	MaxProto = 1<<31 - 1
	// IDLen is the length of a peer id: unpadded base32 of a SHA-256 digest.
	IDLen = 52
)

// TXT keys. See the package documentation for their meaning.
const (
	keyID      = "id"
	keyProto   = "v"
	keyGossip  = "gp"
	keyTLS     = "tp"
	keyAddrs   = "addrs"
	keyNetwork = "net"
)

// ErrInvalidTXT is wrapped by every error ParseTXT and EncodeTXT return.
var ErrInvalidTXT = errors.New("invalid lanchat TXT record")

// Candidate is a peer seen on the network. Everything in it is a claim until
// mesh verifies it over TLS.
type Candidate struct {
	ID         string       // peer id (52-char base32, upper case)
	Addrs      []netip.Addr // addresses the peer says it is reachable on (from TXT), plus the packet's A/AAAA record
	GossipPort uint16       // memberlist port (TCP and UDP)
	TLSPort    uint16       // port of the TLS stream listener
	Proto      int          // protocol version the peer speaks
	Network    string       // network tag, "" when no network key is set
}

// NormalizeID returns id upper-cased if it has the form of a peer id:
// exactly IDLen characters of the base32 alphabet A-Z2-7 (lower case
// accepted). ok is false otherwise.
func NormalizeID(id string) (norm string, ok bool) {
	if len(id) != IDLen {
		return "", false
	}
	b := []byte(id)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= '2' && c <= '7':
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		default:
			return "", false
		}
	}
	return string(b), true
}

// validNetwork reports whether tag may be used as a network tag: 1 to
// MaxNetworkLen characters of A-Z a-z 0-9 and "-._~+/=:". The set leaves
// out the space, quote and backslash, which DNS libraries escape.
func validNetwork(tag string) bool {
	if tag == "" || len(tag) > MaxNetworkLen {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~+/=:", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validAddr reports whether a may be advertised as a place to reach a peer.
func validAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast()
}

// EncodeTXT returns the TXT strings that advertise c, in a fixed order: id,
// v, gp, tp, then addrs when c has addresses, then net when c.Network is
// set. Address zones are dropped (they mean nothing to another host) and
// IPv4-mapped IPv6 addresses are written as IPv4, repeats once. It fails when c could not
// be parsed back by ParseTXT, including when a string would exceed
// MaxTXTString bytes.
func EncodeTXT(c Candidate) ([]string, error) {
	id, ok := NormalizeID(c.ID)
	if !ok {
		return nil, fmt.Errorf("%w: bad peer id %q", ErrInvalidTXT, c.ID)
	}
	if c.GossipPort == 0 || c.TLSPort == 0 {
		return nil, fmt.Errorf("%w: port 0 (gossip %d, tls %d)", ErrInvalidTXT, c.GossipPort, c.TLSPort)
	}
	if c.Proto < 0 || c.Proto > MaxProto {
		return nil, fmt.Errorf("%w: protocol version %d out of range", ErrInvalidTXT, c.Proto)
	}
	txt := []string{
		keyID + "=" + id,
		keyProto + "=" + strconv.Itoa(c.Proto),
		keyGossip + "=" + strconv.Itoa(int(c.GossipPort)),
		keyTLS + "=" + strconv.Itoa(int(c.TLSPort)),
	}
	if len(c.Addrs) > 0 {
		for _, a := range c.Addrs {
			if !validAddr(a.Unmap()) {
				return nil, fmt.Errorf("%w: address %v cannot be advertised", ErrInvalidTXT, a)
			}
		}
		addrs := cleanAddrs(c.Addrs)
		if len(addrs) > MaxAddrs {
			return nil, fmt.Errorf("%w: %d addresses, at most %d", ErrInvalidTXT, len(addrs), MaxAddrs)
		}
		parts := make([]string, len(addrs))
		for i, a := range addrs {
			parts[i] = a.String()
		}
		txt = append(txt, keyAddrs+"="+strings.Join(parts, ","))
	}
	if c.Network != "" {
		if !validNetwork(c.Network) {
			return nil, fmt.Errorf("%w: bad network tag %q", ErrInvalidTXT, c.Network)
		}
		txt = append(txt, keyNetwork+"="+c.Network)
	}
	for _, s := range txt {
		if len(s) > MaxTXTString {
			return nil, fmt.Errorf("%w: string of %d bytes, at most %d: %.20q…", ErrInvalidTXT, len(s), MaxTXTString, s)
		}
	}
	return txt, nil
}

// cleanAddrs returns the valid addresses of in, unmapped, without zones and
// without repeats, in their first order.
func cleanAddrs(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		a = a.Unmap().WithZone("")
		if !validAddr(a) {
			continue
		}
		dup := false
		for _, b := range out {
			if a == b {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, a)
		}
	}
	return out
}

// ParseTXT reads a candidate from the TXT strings of an answer. It is
// strict about what it knows and ignores what it does not: keys are matched
// without regard to case (RFC 6763 §6.4); unknown keys, strings without
// "=" and empty strings are ignored; a known key given twice, a missing or
// malformed id, v, gp or tp, a port of 0, a bad address or network tag,
// more than MaxAddrs addresses, a string longer than MaxTXTString bytes or
// more than MaxTXTStrings strings make the whole record invalid. The
// returned addresses are unmapped and without zones; the network tag is ""
// when net is absent.
func ParseTXT(txt []string) (Candidate, error) {
	var c Candidate
	if len(txt) > MaxTXTStrings {
		return c, fmt.Errorf("%w: %d strings, at most %d", ErrInvalidTXT, len(txt), MaxTXTStrings)
	}
	seen := make(map[string]bool, 6)
	for _, s := range txt {
		if len(s) > MaxTXTString {
			return Candidate{}, fmt.Errorf("%w: string of %d bytes, at most %d", ErrInvalidTXT, len(s), MaxTXTString)
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			continue // a boolean attribute (RFC 6763 §6.4): none is defined
		}
		k = strings.ToLower(k)
		switch k {
		case keyID, keyProto, keyGossip, keyTLS, keyAddrs, keyNetwork:
		default:
			continue
		}
		if seen[k] {
			return Candidate{}, fmt.Errorf("%w: key %q given twice", ErrInvalidTXT, k)
		}
		seen[k] = true
		var err error
		switch k {
		case keyID:
			var ok bool
			if c.ID, ok = NormalizeID(v); !ok {
				err = fmt.Errorf("bad peer id %.60q", v)
			}
		case keyProto:
			var n uint64
			n, err = parseDecimal(v, MaxProto)
			c.Proto = int(n)
		case keyGossip:
			c.GossipPort, err = parsePort(v)
		case keyTLS:
			c.TLSPort, err = parsePort(v)
		case keyAddrs:
			c.Addrs, err = parseAddrs(v)
		case keyNetwork:
			if !validNetwork(v) {
				err = fmt.Errorf("bad network tag %.60q", v)
			}
			c.Network = v
		}
		if err != nil {
			return Candidate{}, fmt.Errorf("%w: %s: %w", ErrInvalidTXT, k, err)
		}
	}
	for _, k := range []string{keyID, keyProto, keyGossip, keyTLS} {
		if !seen[k] {
			return Candidate{}, fmt.Errorf("%w: missing key %q", ErrInvalidTXT, k)
		}
	}
	return c, nil
}

// parseDecimal parses an unsigned decimal of at most max: digits only, no
// sign, no leading zeros other than "0" itself.
func parseDecimal(s string, max uint64) (uint64, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad number %.20q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad number %.20q", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("number %.20q out of range", s)
	}
	return n, nil
}

func parsePort(s string) (uint16, error) {
	n, err := parseDecimal(s, 65535)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errors.New("port 0")
	}
	return uint16(n), nil
}

// parseAddrs parses a comma-separated list of IP addresses. An empty list
// is allowed (the A and AAAA records may still give one).
func parseAddrs(s string) ([]netip.Addr, error) {
	if s == "" {
		return nil, nil
	}
	if n := strings.Count(s, ",") + 1; n > MaxAddrs {
		return nil, fmt.Errorf("%d addresses, at most %d", n, MaxAddrs)
	}
	var out []netip.Addr
	for part := range strings.SplitSeq(s, ",") {
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("bad address %.50q", part)
		}
		a = a.Unmap().WithZone("")
		if !validAddr(a) {
			return nil, fmt.Errorf("address %s cannot be reached", a)
		}
		out = append(out, a)
	}
	return cleanAddrs(out), nil
}
