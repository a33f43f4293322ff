package mesh

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"
)

// testIdentity is a fresh identity.
func testIdentity(t testing.TB) *Identity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Key: priv, ID: IDFromPublicKey(priv.Public().(ed25519.PublicKey))}
}

func testMeta() Meta {
	return Meta{Proto: ProtocolVersion, TLSPort: 7481, Started: 1000, Seq: 1, Name: "bob"}
}

// signedNode is a memberlist node for member at gossip, with m signed by id.
func signedNode(t testing.TB, id *Identity, member string, m Meta, gossip netip.AddrPort) *memberlist.Node {
	t.Helper()
	m.Gossip = gossip
	b, err := m.Sign(member, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: member, Addr: gossip.Addr().AsSlice(), Port: gossip.Port(), Meta: b}
}

// fuzzIdentity is fixed so that the committed seed corpus stays valid.
var fuzzIdentity = func() *Identity {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	return &Identity{Key: priv, ID: IDFromPublicKey(priv.Public().(ed25519.PublicKey))}
}()

var fuzzMember = runOf(fuzzIdentity.ID, 0x0123456789abcdef)

func FuzzVerifyMeta(f *testing.F) {
	gossip := netip.MustParseAddrPort("192.0.2.7:7480")
	for _, m := range []Meta{
		{Proto: ProtocolVersion, TLSPort: DefaultTLSPort, Started: 1, Seq: 1, Name: "alice", Gossip: gossip},
		{Proto: ProtocolVersion, TLSPort: 1, Started: -1, Seq: 1 << 31, State: Busy, Name: "Zoë ✓", Status: "in a meeting until 3", Gossip: netip.MustParseAddrPort("[2001:db8::1]:1")},
		{Proto: 9, TLSPort: 65535, Started: 1 << 62, Seq: 7, State: Away, Name: string(bytes.Repeat([]byte("n"), MaxNameLen)), Status: string(bytes.Repeat([]byte("s"), MaxStatusLen)), Gossip: gossip},
		// A full address list (dual stack, several interfaces).
		{Proto: ProtocolVersion, TLSPort: DefaultTLSPort, Started: 1, Seq: 2, Name: "bob", Gossip: gossip, Addrs: [MaxMetaAddrs]netip.Addr{
			netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("fd00::7"), netip.MustParseAddr("2001:db8::7"),
			netip.MustParseAddr("fe80::7"), netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00:1::7"), netip.MustParseAddr("172.16.0.7")}},
	} {
		b, err := m.Sign(fuzzMember, fuzzIdentity.Key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		flipped := bytes.Clone(b)
		flipped[20] ^= 1
		f.Add(flipped)
		// Signed by another key, which then does not match the id.
		other, err := m.Sign(fuzzMember, testKey)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(other)
	}
	f.Add([]byte{})
	f.Add([]byte{metaMagic, 1, 1, 0x1d, 0x29, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, 'a', 'l', 'i', 'c', 'e', 0}) // version 1
	f.Add(bytes.Repeat([]byte{metaMagic}, MaxMetaLen+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrMeta) {
				t.Fatalf("error %v is not ErrMeta", err)
			}
			if _, verr := VerifyMeta(fuzzMember, b); verr == nil {
				t.Fatal("verified what does not decode")
			}
			return
		}
		// What decodes is bounded by the limits, whatever the input claimed.
		if len(b) > MaxMetaLen || len(m.Name) > MaxNameLen || len(m.Status) > MaxStatusLen || m.State > Busy || m.Seq == 0 {
			t.Fatalf("decoded %+v from %d bytes: over a limit", m, len(b))
		}
		vm, verr := VerifyMeta(fuzzMember, b)
		if verr != nil {
			if !errors.Is(verr, ErrMetaSignature) {
				t.Fatalf("decodable metadata refused for %v, not its signature", verr)
			}
			return
		}
		if vm != m {
			t.Fatalf("verify gave %+v, decode %+v", vm, m)
		}
		// Only the key holder could have made it: it is what it signed
		// (no bytes reserved for later versions in these seeds), and it
		// is refused for any other member name.
		again, err := m.Sign(fuzzMember, fuzzIdentity.Key)
		if err != nil {
			t.Fatalf("verified %+v does not sign: %v", m, err)
		}
		if m2, err := VerifyMeta(fuzzMember, again); err != nil || m2 != m {
			t.Fatalf("re-signed %+v gave %+v, %v", m, m2, err)
		}
		if _, err := VerifyMeta(runOf(fuzzIdentity.ID, 1), b); err == nil {
			t.Fatal("metadata signed for one run verified for another")
		}
	})
}

func TestMetaFitsInMemberlistsLimit(t *testing.T) {
	m := Meta{Proto: ProtocolVersion, TLSPort: 65535, Started: 1 << 62, Seq: 1 << 31,
		Name:   string(bytes.Repeat([]byte("n"), MaxNameLen)),
		Status: string(bytes.Repeat([]byte("s"), MaxStatusLen)),
		Gossip: netip.MustParseAddrPort("[2001:db8::1]:65535")}
	for i := range m.Addrs {
		m.Addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 2)})
	}
	b, err := m.Sign(runOf(fuzzIdentity.ID, 1<<63), fuzzIdentity.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > memberlist.MetaMaxSize {
		t.Fatalf("largest metadata is %d bytes, memberlist takes %d", len(b), memberlist.MetaMaxSize)
	}
	t.Logf("largest metadata: %d bytes of %d", len(b), memberlist.MetaMaxSize)
}

func TestUnsignedAndGarbageMetaAreRefused(t *testing.T) {
	id := testIdentity(t)
	member := runOf(id.ID, 1)
	gossip := netip.MustParseAddrPort("192.0.2.7:7480")
	good := signedNode(t, id, member, testMeta(), gossip).Meta
	stranger := testIdentity(t)
	other := signedNode(t, stranger, member, testMeta(), gossip).Meta
	cut := bytes.Clone(good[:len(good)-ed25519.SignatureSize])
	cut = append(cut, make([]byte, ed25519.SignatureSize)...)
	v1, _ := os.ReadFile(filepath.Join("testdata", "meta-v1.bin"))
	for name, b := range map[string][]byte{
		"empty":                 nil,
		"garbage":               bytes.Repeat([]byte{0xA5}, 300),
		"version 1 (unsigned)":  v1,
		"zero signature":        cut,
		"signed by another key": other,
	} {
		if _, err := VerifyMeta(member, b); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, err := VerifyMeta(member, good); err != nil {
		t.Fatalf("good metadata: %v", err)
	}
	if _, err := VerifyMeta(runOf(id.ID, 2), good); !errors.Is(err, ErrMetaSignature) {
		t.Errorf("metadata of one run under another's name: %v", err)
	}
}

// The address list travels signed and comes back as it went; metadata
// of an older build (no list) still decodes, with none; a list that
// lies about its length or holds an address nobody could reach refuses
// the whole metadata.
func TestMetaAddressList(t *testing.T) {
	id := testIdentity(t)
	member := runOf(id.ID, 1)
	m := testMeta()
	m.Gossip = netip.MustParseAddrPort("10.0.0.5:7480")
	want := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("fd00::5"), netip.MustParseAddr("fe80::5")}
	copy(m.Addrs[:], want)
	b, err := m.Sign(member, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyMeta(member, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.AddrList(), want) {
		t.Fatalf("addresses %v, want %v", got.AddrList(), want)
	}

	old := m
	old.Addrs = [MaxMetaAddrs]netip.Addr{}
	body, err := old.Sign(member, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	// An older build ends at the gossip port: cut the empty list's count.
	tail := body[len(body)-metaTail:]
	legacy := append(bytes.Clone(body[:len(body)-metaTail-1]), tail[:ed25519.PublicKeySize]...)
	legacy = append(legacy, ed25519.Sign(id.Key, signedMeta(member, legacy))...)
	if lm, err := VerifyMeta(member, legacy); err != nil || len(lm.AddrList()) != 0 {
		t.Fatalf("metadata without a list: %v, %v", lm.AddrList(), err)
	}

	for name, a := range map[string]netip.Addr{
		"loopback": netip.MustParseAddr("127.0.0.1"), "multicast": netip.MustParseAddr("ff02::fb"),
		"unspecified": netip.IPv6Unspecified(), "zoned": netip.MustParseAddr("fe80::1%eth0"),
	} {
		bad := m
		bad.Addrs[1] = a
		if _, err := bad.Sign(member, id.Key); err == nil {
			t.Errorf("%s address signed", name)
		}
	}
	// A count past the cap, forged by a key holder: refused when read.
	forged := bytes.Clone(b[:len(b)-metaTail])
	i := bytes.Index(forged, []byte{4, 10, 0, 0, 5, 4, 10, 1, 0, 5}) - 1 // the count before the list
	if i < 0 || forged[i] != byte(len(want)) {
		t.Fatalf("no list count at %d", i)
	}
	forged[i] = MaxMetaAddrs + 1
	forged = append(forged, b[len(b)-metaTail:len(b)-ed25519.SignatureSize]...)
	forged = append(forged, ed25519.Sign(id.Key, signedMeta(member, forged))...)
	if _, err := VerifyMeta(member, forged); err == nil {
		t.Error("a list of more than MaxMetaAddrs addresses decoded")
	}
}
