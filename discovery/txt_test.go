package discovery

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// newID returns a random peer id.
func newID(t testing.TB) string {
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// fixedID is a valid peer id for tests that need a stable one.
const fixedID = "5ZQHFAVPDZ6GGXEKXBMK3ZSVSRFYJTL7T3IYPAI3ZRHYZ4HGJ3AQ"

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestTXTRoundTrip(t *testing.T) {
	many := make([]netip.Addr, MaxAddrs)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
	}
	tests := []struct {
		name string
		in   Candidate
		want Candidate // zero: same as in
	}{
		{name: "minimal", in: Candidate{ID: fixedID, GossipPort: 1, TLSPort: 65535}},
		{name: "v4 and v6 addresses", in: Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Proto: 1,
			Addrs: addrs("192.168.1.20", "fd00::20", "fe80::1")}},
		{name: "network tag", in: Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Proto: 2, Network: "k1-3f9a0c/+=:_~."}},
		{name: "sixteen addresses", in: Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Addrs: many}},
		{name: "max proto", in: Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Proto: MaxProto}},
		{
			name: "lower-case id is upper-cased",
			in:   Candidate{ID: strings.ToLower(fixedID), GossipPort: 7737, TLSPort: 7738},
			want: Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738},
		},
		{
			name: "mapped, zoned and repeated addresses are cleaned",
			in:   Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Addrs: addrs("::ffff:10.0.0.1", "fe80::1%eth0", "10.0.0.1")},
			want: Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Addrs: addrs("10.0.0.1", "fe80::1")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txt, err := EncodeTXT(tt.in)
			if err != nil {
				t.Fatalf("EncodeTXT: %v", err)
			}
			for _, s := range txt {
				if len(s) > MaxTXTString {
					t.Errorf("string of %d bytes: %q", len(s), s)
				}
			}
			got, err := ParseTXT(txt)
			if err != nil {
				t.Fatalf("ParseTXT(%q): %v", txt, err)
			}
			want := tt.want
			if want.ID == "" {
				want = tt.in
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip of %q:\n got %+v\nwant %+v", txt, got, want)
			}
		})
	}
}

func TestEncodeTXTFormat(t *testing.T) {
	txt, err := EncodeTXT(Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738, Proto: 1,
		Addrs: addrs("192.168.1.20", "fd00::20"), Network: "k1-3f9a0c"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"id=" + fixedID, "v=1", "gp=7737", "tp=7738", "addrs=192.168.1.20,fd00::20", "net=k1-3f9a0c"}
	if !reflect.DeepEqual(txt, want) {
		t.Errorf("got %q, want %q", txt, want)
	}
}

func TestEncodeTXTRejects(t *testing.T) {
	many := make([]netip.Addr, MaxAddrs+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
	}
	long := make([]netip.Addr, MaxAddrs)
	for i := range long {
		long[i] = netip.MustParseAddr(fmt.Sprintf("fd00:1111:2222:3333:4444:5555:6666:%x", 0x1000+i))
	}
	ok := Candidate{ID: fixedID, GossipPort: 7737, TLSPort: 7738}
	with := func(f func(*Candidate)) Candidate { c := ok; f(&c); return c }
	tests := []struct {
		name string
		in   Candidate
	}{
		{"empty id", with(func(c *Candidate) { c.ID = "" })},
		{"short id", with(func(c *Candidate) { c.ID = fixedID[:51] })},
		{"id with 8", with(func(c *Candidate) { c.ID = "8" + fixedID[1:] })},
		{"gossip port 0", with(func(c *Candidate) { c.GossipPort = 0 })},
		{"tls port 0", with(func(c *Candidate) { c.TLSPort = 0 })},
		{"negative proto", with(func(c *Candidate) { c.Proto = -1 })},
		{"too many addresses", with(func(c *Candidate) { c.Addrs = many })},
		{"addrs string over 255 bytes", with(func(c *Candidate) { c.Addrs = long })},
		{"unspecified address", with(func(c *Candidate) { c.Addrs = addrs("0.0.0.0") })},
		{"multicast address", with(func(c *Candidate) { c.Addrs = addrs("224.0.0.251") })},
		{"invalid address", with(func(c *Candidate) { c.Addrs = []netip.Addr{{}} })},
		{"network with space", with(func(c *Candidate) { c.Network = "a b" })},
		{"network with backslash", with(func(c *Candidate) { c.Network = `a\b` })},
		{"network not ascii", with(func(c *Candidate) { c.Network = "büro" })},
		{"network too long", with(func(c *Candidate) { c.Network = strings.Repeat("n", MaxNetworkLen+1) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txt, err := EncodeTXT(tt.in)
			if err == nil {
				t.Fatalf("EncodeTXT(%+v) = %q, want an error", tt.in, txt)
			}
			if !errors.Is(err, ErrInvalidTXT) {
				t.Errorf("error %v does not wrap ErrInvalidTXT", err)
			}
		})
	}
}

func TestParseTXTRejects(t *testing.T) {
	base := []string{"id=" + fixedID, "v=1", "gp=7737", "tp=7738"}
	// replace returns base with the string for key replaced by s (or
	// removed when s is "").
	replace := func(key, s string) []string {
		var out []string
		for _, b := range base {
			if strings.HasPrefix(b, key+"=") {
				if s != "" {
					out = append(out, s)
				}
				continue
			}
			out = append(out, b)
		}
		return out
	}
	plus := func(s ...string) []string { return append(append([]string(nil), base...), s...) }
	seventeen := make([]string, MaxAddrs+1)
	for i := range seventeen {
		seventeen[i] = fmt.Sprintf("10.0.0.%d", i+1)
	}
	tests := []struct {
		name string
		txt  []string
	}{
		{"nil", nil},
		{"empty string only", []string{""}},
		{"missing id", replace("id", "")},
		{"missing v", replace("v", "")},
		{"missing gp", replace("gp", "")},
		{"missing tp", replace("tp", "")},
		{"id without value", replace("id", "id")},
		{"empty id", replace("id", "id=")},
		{"short id", replace("id", "id="+fixedID[:51])},
		{"long id", replace("id", "id="+fixedID+"A")},
		{"id with 1", replace("id", "id=1"+fixedID[1:])},
		{"id with padding", replace("id", "id="+fixedID[:51]+"=")},
		{"id escaped non-ascii", replace("id", `id=\195\169`+fixedID[2:])},
		{"id twice", plus("id=" + fixedID)},
		{"id twice in other case", plus("ID=" + fixedID)},
		{"gossip port 0", replace("gp", "gp=0")},
		{"tls port 0", replace("tp", "tp=0")},
		{"port overflow", replace("gp", "gp=65536")},
		{"port huge", replace("tp", "tp=99999999999999999999")},
		{"port negative", replace("tp", "tp=-1")},
		{"port plus sign", replace("tp", "tp=+80")},
		{"port leading zero", replace("tp", "tp=080")},
		{"port with space", replace("tp", "tp= 80")},
		{"port hex", replace("tp", "tp=0x50")},
		{"port empty", replace("tp", "tp=")},
		{"proto not a number", replace("v", "v=one")},
		{"proto overflow", replace("v", "v=2147483648")},
		{"too many addresses", plus("addrs=" + strings.Join(seventeen, ","))},
		{"bad address", plus("addrs=10.0.0.1,not-an-ip")},
		{"empty address in list", plus("addrs=10.0.0.1,,10.0.0.2")},
		{"address with port", plus("addrs=10.0.0.1:80")},
		{"address with space", plus("addrs=10.0.0.1, 10.0.0.2")},
		{"unspecified address", plus("addrs=::")},
		{"multicast address", plus("addrs=ff02::fb")},
		{"addrs twice", plus("addrs=10.0.0.1", "addrs=10.0.0.2")},
		{"empty network", plus("net=")},
		{"network with quote", plus(`net=a"b`)},
		{"network too long", plus("net=" + strings.Repeat("n", MaxNetworkLen+1))},
		{"string over 255 bytes", plus("x=" + strings.Repeat("x", 254))},
		{"too many strings", plus(make([]string, MaxTXTStrings)...)},
		{"garbage", []string{"\x00\xff\xfe", "=", "=="}},
		{"binary id", replace("id", "id=\x00"+fixedID[1:])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseTXT(tt.txt)
			if err == nil {
				t.Fatalf("ParseTXT(%q) = %+v, want an error", tt.txt, c)
			}
			if !errors.Is(err, ErrInvalidTXT) {
				t.Errorf("error %v does not wrap ErrInvalidTXT", err)
			}
		})
	}
}

func TestParseTXTLenient(t *testing.T) {
	tests := []struct {
		name string
		txt  []string
		want Candidate
	}{
		{
			name: "unknown keys, flags and empty strings ignored",
			txt:  []string{"", "flag", "zz=whatever \\195", "id=" + fixedID, "v=1", "gp=1", "tp=2", "future=1"},
			want: Candidate{ID: fixedID, Proto: 1, GossipPort: 1, TLSPort: 2},
		},
		{
			name: "keys in any case, any order",
			txt:  []string{"TP=2", "Gp=1", "V=0", "ID=" + strings.ToLower(fixedID)},
			want: Candidate{ID: fixedID, GossipPort: 1, TLSPort: 2},
		},
		{
			name: "empty addrs",
			txt:  []string{"id=" + fixedID, "v=1", "gp=1", "tp=2", "addrs="},
			want: Candidate{ID: fixedID, Proto: 1, GossipPort: 1, TLSPort: 2},
		},
		{
			name: "value may contain =",
			txt:  []string{"id=" + fixedID, "v=1", "gp=1", "tp=2", "net=a=b"},
			want: Candidate{ID: fixedID, Proto: 1, GossipPort: 1, TLSPort: 2, Network: "a=b"},
		},
		{
			name: "mapped, zoned and repeated addresses cleaned",
			txt:  []string{"id=" + fixedID, "v=1", "gp=1", "tp=2", "addrs=::ffff:10.0.0.1,10.0.0.1,fe80::1%eth0"},
			want: Candidate{ID: fixedID, Proto: 1, GossipPort: 1, TLSPort: 2, Addrs: addrs("10.0.0.1", "fe80::1")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTXT(tt.txt)
			if err != nil {
				t.Fatalf("ParseTXT(%q): %v", tt.txt, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNormalizeID(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"upper", fixedID, fixedID, true},
		{"lower", strings.ToLower(fixedID), fixedID, true},
		{"empty", "", "", false},
		{"51 chars", fixedID[:51], "", false},
		{"53 chars", fixedID + "A", "", false},
		{"digit 0", "0" + fixedID[1:], "", false},
		{"digit 8", "8" + fixedID[1:], "", false},
		{"non-ascii", "é" + fixedID[2:], "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeID(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("NormalizeID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseTXT feeds ParseTXT arbitrary records (strings separated by
// newlines). It must never panic, what it accepts must be within the
// limits, and what it accepts must encode and parse back to itself.
func FuzzParseTXT(f *testing.F) {
	f.Add("id=" + fixedID + "\nv=1\ngp=7737\ntp=7738\naddrs=192.168.1.20,fd00::20\nnet=k1")
	f.Add("ID=" + strings.ToLower(fixedID) + "\nV=0\nGP=1\nTP=65535\naddrs=::ffff:1.2.3.4,fe80::1%eth0")
	f.Add("id=" + fixedID + "\nv=1\ngp=0\ntp=65536")
	f.Add("addrs=1.1.1.1,1.1.1.1,1.1.1.1\n\nflag\n=")
	f.Add("\x00\xff")
	f.Fuzz(func(t *testing.T, record string) {
		txt := strings.Split(record, "\n")
		c, err := ParseTXT(txt)
		if err != nil {
			if !errors.Is(err, ErrInvalidTXT) {
				t.Fatalf("error %v does not wrap ErrInvalidTXT", err)
			}
			return
		}
		if _, ok := NormalizeID(c.ID); !ok || c.ID != strings.ToUpper(c.ID) {
			t.Fatalf("accepted id %q", c.ID)
		}
		if c.GossipPort == 0 || c.TLSPort == 0 || c.Proto < 0 || len(c.Addrs) > MaxAddrs {
			t.Fatalf("accepted %+v", c)
		}
		for _, a := range c.Addrs {
			if !validAddr(a) || a.Zone() != "" || a.Is4In6() {
				t.Fatalf("accepted address %v", a)
			}
		}
		again, err := EncodeTXT(c)
		if err != nil {
			t.Fatalf("EncodeTXT(%+v) of an accepted record: %v", c, err)
		}
		back, err := ParseTXT(again)
		if err != nil {
			t.Fatalf("ParseTXT(EncodeTXT(%+v)) = %v", c, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed %+v into %+v", c, back)
		}
	})
}
