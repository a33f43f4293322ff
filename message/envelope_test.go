package message

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"lanchat/mesh"
)

// testKey returns a deterministic key from a one-byte seed.
func testKey(seed byte) (ed25519.PrivateKey, string) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return key, mesh.IDFromPublicKey(key.Public().(ed25519.PublicKey))
}

func TestSealOpenRoundTrip(t *testing.T) {
	key, author := testKey(1)
	_, to := testKey(2)
	tests := []struct {
		name string
		env  Envelope
	}{
		{"plain", Envelope{To: to, Kind: KindText, Body: "hello", AuthorName: "alice"}},
		{"empty body", Envelope{To: to, Kind: KindText}},
		{"max body", Envelope{To: to, Kind: KindText, Body: strings.Repeat("x", MaxText)}},
		{"unicode and controls", Envelope{To: to, Kind: KindText, Body: "héllo \x1b[31m 🌍\n", AuthorName: "Zoë 🐈"}},
		{"preset id and time", Envelope{ID: "00112233445566778899aabbccddeeff", To: to, Kind: KindText, Body: "x",
			Time: Timestamp{Wall: 1_700_000_000_123_456_789, Logical: 7}}},
		{"max fields", Envelope{To: to, Kind: strings.Repeat("k", MaxKind),
			AuthorName: strings.Repeat("n", MaxName), Body: strings.Repeat("b", MaxText)}},
		{"room event", Envelope{Conversation: "#general", Seq: 1, Kind: KindText, Body: "x"}},
		{"room join", Envelope{Conversation: "#general", Seq: 7, Kind: KindJoin, AuthorName: "alice"}},
		{"room leave", Envelope{Conversation: "#a", Seq: 8, Kind: KindLeave}},
		{"room max seq", Envelope{Conversation: "#general", Seq: math.MaxUint64, Kind: KindText, Body: "last"}},
		{"room max fields", Envelope{Conversation: "#" + strings.Repeat("r", MaxRoomName), Seq: 1 << 40,
			Kind: strings.Repeat("k", MaxKind), AuthorName: strings.Repeat("n", MaxName), Body: strings.Repeat("b", MaxText),
			Time: Timestamp{Wall: 1_700_000_000_123_456_789, Logical: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			sealed, err := Seal(&env, key)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) > MaxEnvelope {
				t.Fatalf("sealed %d bytes > MaxEnvelope %d", len(sealed), MaxEnvelope)
			}
			if env.Author != author || len(env.ID) != 32 {
				t.Fatalf("Seal did not fill author/id: %q %q", env.Author, env.ID)
			}
			got, err := Open(sealed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Sealed(), sealed) || !bytes.Equal(env.Sealed(), sealed) {
				t.Error("Sealed() differs from the sealed bytes")
			}
			if !bytes.Equal(got.PublicKey(), key.Public().(ed25519.PublicKey)) {
				t.Error("PublicKey() is not the author's key")
			}
			if !ed25519.Verify(got.PublicKey(), sealed[:len(sealed)-64], got.Signature()) {
				t.Error("Signature() does not verify")
			}
			want := byte(EnvelopeV1)
			if env.Conversation != "" {
				want = EnvelopeV2
			}
			if got.Version() != want || sealed[2] != want || env.Version() != want {
				t.Errorf("version %d (byte %d), want %d", got.Version(), sealed[2], want)
			}
			got.sealed, env.sealed = nil, nil
			if !reflect.DeepEqual(*got, env) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, env)
			}
		})
	}
}

func TestMaxEnvelopeFitsFrame(t *testing.T) {
	if MaxEnvelope > MaxFrame {
		t.Fatalf("MaxEnvelope %d > MaxFrame %d", MaxEnvelope, MaxFrame)
	}
}

func TestOpenTamperedBody(t *testing.T) {
	key, _ := testKey(1)
	_, to := testKey(2)
	env := Envelope{To: to, Kind: KindText, Body: "pay alice 10"}
	sealed, err := Seal(&env, key)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(sealed, []byte("10"))
	sealed[i] = '9'
	if _, err := Open(sealed); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open(tampered body) = %v, want ErrBadSignature", err)
	}
}

// Every single-byte change must be caught, by the layout checks or by the
// signature.
func TestOpenEveryByteFlipped(t *testing.T) {
	key, _ := testKey(1)
	_, to := testKey(2)
	env := Envelope{To: to, Kind: KindText, Body: "hi there", AuthorName: "al"}
	sealed, err := Seal(&env, key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		_, err := Open(b)
		if err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
		if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("flipping byte %d: unexpected error %v", i, err)
		}
	}
}

// An envelope validly signed by one key but claiming another author (for
// example a relay trying to pass its words off as someone else's) is
// refused.
func TestOpenAuthorKeyMismatch(t *testing.T) {
	key, _ := testKey(1)
	_, other := testKey(3)
	_, to := testKey(2)

	env := Envelope{Author: other, To: to, Kind: KindText, Body: "hi"}
	if _, err := Seal(&env, key); err == nil {
		t.Fatal("Seal accepted an author that is not the key's id")
	}

	// Build it by hand: signature valid for the carried key, author wrong.
	id, _ := parseID(NewID())
	b := encode(&env, id, key.Public().(ed25519.PublicKey))
	b = append(b, ed25519.Sign(key, b)...)
	if _, err := Open(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open(author ≠ key) = %v, want ErrBadSignature", err)
	}

	// And the other way round: the right author, another key's signature.
	env.Author = mesh.IDFromPublicKey(key.Public().(ed25519.PublicKey))
	b = encode(&env, id, key.Public().(ed25519.PublicKey))
	k3, _ := testKey(3)
	b = append(b, ed25519.Sign(k3, b)...)
	if _, err := Open(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open(signed by another key) = %v, want ErrBadSignature", err)
	}
}

func TestSealRefuses(t *testing.T) {
	key, _ := testKey(1)
	_, to := testKey(2)
	tests := []struct {
		name string
		env  Envelope
		want error
	}{
		{"body too large", Envelope{To: to, Kind: KindText, Body: strings.Repeat("x", MaxText+1)}, ErrTooLarge},
		{"invalid utf-8", Envelope{To: to, Kind: KindText, Body: "a\xffb"}, ErrMalformed},
		{"nul in body", Envelope{To: to, Kind: KindText, Body: "a\x00b"}, ErrMalformed},
		{"nul in name", Envelope{To: to, Kind: KindText, AuthorName: "a\x00"}, ErrMalformed},
		{"name too long", Envelope{To: to, Kind: KindText, AuthorName: strings.Repeat("n", MaxName+1)}, ErrMalformed},
		{"empty kind", Envelope{To: to}, ErrMalformed},
		{"upper-case kind", Envelope{To: to, Kind: "Text"}, ErrMalformed},
		{"kind too long", Envelope{To: to, Kind: strings.Repeat("k", MaxKind+1)}, ErrMalformed},
		{"bad recipient", Envelope{To: "bob", Kind: KindText}, ErrMalformed},
		{"no recipient", Envelope{Kind: KindText}, ErrMalformed},
		{"upper-case id", Envelope{ID: "00112233445566778899AABBCCDDEEFF", To: to, Kind: KindText}, ErrMalformed},
		{"short id", Envelope{ID: "0011", To: to, Kind: KindText}, ErrMalformed},
		{"negative time", Envelope{To: to, Kind: KindText, Time: Timestamp{Wall: -1}}, ErrMalformed},
		{"seq in a direct message", Envelope{To: to, Seq: 1, Kind: KindText}, ErrMalformed},
		{"join in a direct message", Envelope{To: to, Kind: KindJoin}, ErrMalformed},
		{"leave in a direct message", Envelope{To: to, Kind: KindLeave}, ErrMalformed},
		{"room event with a recipient", Envelope{To: to, Conversation: "#general", Seq: 1, Kind: KindText}, ErrMalformed},
		{"room event with seq 0", Envelope{Conversation: "#general", Kind: KindText}, ErrMalformed},
		{"room without #", Envelope{Conversation: "general", Seq: 1, Kind: KindText}, ErrMalformed},
		{"room name upper-case", Envelope{Conversation: "#General", Seq: 1, Kind: KindText}, ErrMalformed},
		{"room name empty", Envelope{Conversation: "#", Seq: 1, Kind: KindText}, ErrMalformed},
		{"room name too long", Envelope{Conversation: "#" + strings.Repeat("r", MaxRoomName+1), Seq: 1, Kind: KindText}, ErrMalformed},
		{"join with a body", Envelope{Conversation: "#general", Seq: 1, Kind: KindJoin, Body: "hi"}, ErrMalformed},
		{"leave with a body", Envelope{Conversation: "#general", Seq: 2, Kind: KindLeave, Body: "bye"}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if _, err := Seal(&env, key); !errors.Is(err, tt.want) {
				t.Fatalf("Seal = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	key, _ := testKey(1)
	_, to := testKey(2)
	env := Envelope{To: to, Kind: KindText, Body: "hello"}
	good, err := Seal(&env, key)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	// bodyLenAt is the offset of the body's length prefix.
	bodyLenAt := len(good) - 64 - len("hello") - 4

	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"too short", good[:envFixedLen], ErrMalformed},
		{"too large", make([]byte, MaxEnvelope+1), ErrTooLarge},
		{"bad magic", with(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMalformed},
		{"unknown version", with(func(b []byte) []byte { b[2] = 2; return b }), ErrMalformed},
		{"trailing byte", with(func(b []byte) []byte {
			return append(b[:len(b)-64:len(b)-64], append([]byte{0}, b[len(b)-64:]...)...)
		}), ErrMalformed},
		{"signature cut", good[:len(good)-1], ErrMalformed},
		{"body length huge", with(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[bodyLenAt:], 0xffffffff)
			return b
		}), ErrTooLarge},
		{"body length past end", with(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[bodyLenAt:], 1000)
			return b
		}), ErrMalformed},
		{"author length huge", with(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[envFixedLen:], 0xffff)
			return b
		}), ErrMalformed},
		{"bad signature", with(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
		})
	}
	// Every truncation is refused.
	for n := range len(good) {
		if _, err := Open(good[:n]); err == nil {
			t.Fatalf("Open(first %d of %d bytes) succeeded", n, len(good))
		}
	}
}

// resign signs unsigned (encoded bytes without a signature) with key, as
// a hostile author could, whatever the bytes say.
func resign(key ed25519.PrivateKey, unsigned []byte) []byte {
	return append(bytes.Clone(unsigned), ed25519.Sign(key, unsigned)...)
}

// Room events (version 2) validly signed but breaking the rules of their
// version, and direct messages pretending to be the other version, are
// refused.
func TestOpenRefusesVersionRules(t *testing.T) {
	key, _ := testKey(1)
	_, to := testKey(2)
	enc := func(env Envelope) []byte {
		env.Author = mesh.IDFromPublicKey(key.Public().(ed25519.PublicKey))
		id, _ := parseID(NewID())
		return encode(&env, id, key.Public().(ed25519.PublicKey))
	}
	room := enc(Envelope{Conversation: "#general", Seq: 1, Kind: KindText, Body: "hello"})
	direct := enc(Envelope{To: to, Kind: KindText, Body: "hello"})
	// withoutSeq turns a version 2 encoding into version 1's layout.
	withoutSeq := func(b []byte) []byte {
		b = append(bytes.Clone(b[:offSeq]), b[offSeq+8:]...)
		b[2] = EnvelopeV1
		return b
	}
	// withSeq turns a version 1 encoding into version 2's layout.
	withSeq := func(b []byte, seq uint64) []byte {
		out := binary.BigEndian.AppendUint64(bytes.Clone(b[:offSeq]), seq)
		out = append(out, b[offSeq:]...)
		out[2] = EnvelopeV2
		return out
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"version 1 with a room", withoutSeq(room)},
		{"version 2 without a room", withSeq(direct, 1)},
		{"version 2 with seq 0", enc(Envelope{Conversation: "#general", Seq: 1, Kind: KindText})},
		{"version 2 with a recipient", enc(Envelope{Conversation: "#general", To: to, Seq: 1, Kind: KindText})},
		{"version 2 with a bad room name", enc(Envelope{Conversation: "#Gen eral", Seq: 1, Kind: KindText})},
		{"version 2 join with a body", enc(Envelope{Conversation: "#general", Seq: 1, Kind: KindJoin, Body: "x"})},
		{"version 1 join", enc(Envelope{To: to, Kind: KindJoin})},
		{"version 2 cut inside seq", room[:offSeq+4]},
		{"version 3", func() []byte { b := bytes.Clone(room); b[2] = 3; return b }()},
	}
	// The seq 0 case: encode writes what it is given.
	binary.BigEndian.PutUint64(tests[2].b[offSeq:], 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(resign(key, tt.b)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open = %v, want ErrMalformed", err)
			}
		})
	}
	// The untouched ones open, and every truncation and byte flip of the
	// room event is refused.
	good := resign(key, room)
	if _, err := Open(good); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(resign(key, direct)); err != nil {
		t.Fatal(err)
	}
	for n := range len(good) {
		if _, err := Open(good[:n]); err == nil {
			t.Fatalf("Open(first %d of %d bytes) succeeded", n, len(good))
		}
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		if _, err := Open(b); err == nil {
			t.Fatalf("flipping byte %d of a room event went unnoticed", i)
		}
	}
}

// Version 1 is byte for byte what it was before version 2 existed: these
// are the bytes of doc.go's example, recorded before (the signature is
// the one the example shows).
func TestVersion1Unchanged(t *testing.T) {
	key, _ := testKey(1)
	_, bob := testKey(2)
	env := Envelope{
		ID:         "00112233445566778899aabbccddeeff",
		AuthorName: "alice",
		To:         bob,
		Time:       Timestamp{Wall: 1_700_000_000_000_000_000},
		Kind:       KindText,
		Body:       "hi",
	}
	sealed, err := Seal(&env, key)
	if err != nil {
		t.Fatal(err)
	}
	const want = "4c450100112233445566778899aabbccddeeff8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4" +
		"0f6f5c17979cfe362a000000000000003447523251374746354c4836505a46444e55524e4b56505554485051564a4a46" +
		"564246484259535637494b44474b4250545a46374100344e493441485650514c4749435548444e5636364a584a445353" +
		"494a505053564d424252555a51354f4f325a484b4b50514841545100000004746578740005616c696365000000026869" +
		"f1d76ce036a0b5894fb596decd8dc2e70a2b9d97eaf7b2f58762c2dd9759471d8b23c0246ef5c463a5428fbf47d956fa" +
		"8fcd32d4232278b001498d8fc223bd01"
	if got := fmt.Sprintf("%x", sealed); got != want {
		t.Fatalf("version 1 encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestCompare(t *testing.T) {
	a := &Envelope{Time: Timestamp{Wall: 10}, Author: "B", ID: "1"}
	tests := []struct {
		name string
		b    *Envelope
		want int
	}{
		{"later wall", &Envelope{Time: Timestamp{Wall: 11}, Author: "A", ID: "0"}, -1},
		{"later logical", &Envelope{Time: Timestamp{Wall: 10, Logical: 1}, Author: "A", ID: "0"}, -1},
		{"same time, author breaks the tie", &Envelope{Time: Timestamp{Wall: 10}, Author: "A", ID: "9"}, 1},
		{"same time and author, id breaks the tie", &Envelope{Time: Timestamp{Wall: 10}, Author: "B", ID: "2"}, -1},
		{"equal", &Envelope{Time: Timestamp{Wall: 10}, Author: "B", ID: "1"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(a, tt.b); got != tt.want {
				t.Fatalf("Compare = %d, want %d", got, tt.want)
			}
			if got := Compare(tt.b, a); got != -tt.want {
				t.Fatalf("Compare reversed = %d, want %d", got, -tt.want)
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	key, _ := testKey(1)
	_, to := testKey(2)
	for _, env := range []Envelope{
		{To: to, Kind: KindText, Body: "hello", AuthorName: "alice"},
		{To: to, Kind: KindText},
		{To: to, Kind: "receipt.read", Body: "{}"},
		{Conversation: "#general", Seq: 1, Kind: KindText, Body: "hello room"},
		{Conversation: "#general", Seq: 2, Kind: KindJoin, AuthorName: "alice"},
		{Conversation: "#x", Seq: math.MaxUint64, Kind: KindLeave},
	} {
		b, err := Seal(&env, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("LE\x01"))
	f.Add([]byte("LE\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Open(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Open: error outside the sentinels: %v", err)
			}
			return
		}
		// Whatever opens is valid, and re-encodes to the same bytes.
		if err := validate(env); err != nil {
			t.Fatalf("opened an invalid envelope: %v", err)
		}
		id, err := parseID(env.ID)
		if err != nil {
			t.Fatal(err)
		}
		re := encode(env, id, env.PublicKey())
		if !bytes.Equal(append(re, env.Signature()...), b) {
			t.Fatal("opened bytes do not re-encode identically")
		}
		if (env.Version() == EnvelopeV2) != (env.Conversation != "") || (env.Seq == 0) != (env.Version() == EnvelopeV1) {
			t.Fatalf("version %d envelope with conversation %q, seq %d", env.Version(), env.Conversation, env.Seq)
		}
	})
}

// Ids start with the time they were made, in milliseconds, and differ
// after it.
func TestNewIDTimePrefix(t *testing.T) {
	before := time.Now().UnixMilli()
	a, b := NewID(), NewID()
	after := time.Now().UnixMilli()
	for _, s := range []string{a, b} {
		id, err := parseID(s)
		if err != nil {
			t.Fatal(err)
		}
		var ms int64
		for _, c := range id[:6] {
			ms = ms<<8 | int64(c)
		}
		if ms < before || ms > after {
			t.Errorf("id %s carries time %d, not within [%d, %d]", s, ms, before, after)
		}
	}
	if a == b {
		t.Error("two ids alike")
	}
}
