package message

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
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
		{"conversation", Envelope{To: to, Conversation: "room:general", Kind: KindText, Body: "x"}},
		{"room only", Envelope{Conversation: "room:general", Kind: "text", Body: "x"}},
		{"max fields", Envelope{To: to, Conversation: strings.Repeat("c", MaxConversation), Kind: strings.Repeat("k", MaxKind),
			AuthorName: strings.Repeat("n", MaxName), Body: strings.Repeat("b", MaxText)}},
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
		{Conversation: "room", Kind: "receipt.read", Body: "{}"},
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
