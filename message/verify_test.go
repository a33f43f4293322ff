package message

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// sealedBy seals n text messages by key to to, each body naming i.
func sealedBy(t testing.TB, key ed25519.PrivateKey, to string, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		env := &Envelope{To: to, Kind: KindText, Body: fmt.Sprint("message ", i), Time: Timestamp{Wall: int64(i)}}
		b, err := Seal(env, key)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// sameAsOpen fails unless OpenBatch's results for payloads are Open's.
func sameAsOpen(t *testing.T, payloads [][]byte, envs []*Envelope, errs []error) {
	t.Helper()
	if len(envs) != len(payloads) || len(errs) != len(payloads) {
		t.Fatalf("%d payloads, %d envelopes, %d errors", len(payloads), len(envs), len(errs))
	}
	for i, p := range payloads {
		want, werr := Open(p)
		if (errs[i] == nil) != (werr == nil) || (envs[i] == nil) != (want == nil) {
			t.Fatalf("payload %d: OpenBatch %v, %v; Open %v", i, envs[i] != nil, errs[i], werr)
		}
		for _, sentinel := range []error{ErrMalformed, ErrTooLarge, ErrBadSignature} {
			if errors.Is(errs[i], sentinel) != errors.Is(werr, sentinel) {
				t.Fatalf("payload %d: OpenBatch error %v, Open error %v", i, errs[i], werr)
			}
		}
		if want == nil {
			continue
		}
		if !reflect.DeepEqual(*envs[i], *want) {
			t.Fatalf("payload %d: OpenBatch %+v, Open %+v", i, *envs[i], *want)
		}
		if &envs[i].Sealed()[0] != &p[0] {
			t.Fatalf("payload %d: Sealed() is a copy, not the payload", i)
		}
	}
}

// A Verifier gives Open's answer for every payload, before and after it
// prepares a key, for good, forged and malformed envelopes by several
// keys mixed in one batch, alone and spread over the CPUs.
func TestVerifierMatchesOpen(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	_, to := testKey(9)
	var keys []ed25519.PrivateKey
	for seed := byte(1); seed <= 3; seed++ {
		k, _ := testKey(seed)
		keys = append(keys, k)
	}
	v := NewVerifier()
	for round := range 6 {
		var batch [][]byte
		for _, k := range keys {
			batch = append(batch, sealedBy(t, k, to, 20+rng.IntN(40))...)
		}
		for i := range batch {
			switch rng.IntN(10) {
			case 0: // a forged signature
				batch[i] = bytes.Clone(batch[i])
				batch[i][len(batch[i])-1-rng.IntN(ed25519.SignatureSize)] ^= 0x20
			case 1: // a forged body
				batch[i] = bytes.Clone(batch[i])
				batch[i][len(batch[i])-ed25519.SignatureSize-1] ^= 0x01
			case 2: // cut short
				batch[i] = batch[i][:rng.IntN(len(batch[i]))]
			case 3: // signed by another key than the author's
				env, _ := Open(batch[i])
				other := keys[(rng.IntN(2)+1)%len(keys)]
				if mixed := signedAs(t, env, other); mixed != nil {
					batch[i] = mixed
				}
			}
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		n := len(batch)
		if round%2 == 1 {
			n = min(n, 20) // small batches take the one-goroutine path
		}
		envs, errs := v.OpenBatch(batch[:n])
		sameAsOpen(t, batch[:n], envs, errs)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hot != len(keys) {
		t.Errorf("%d keys prepared, want %d", v.hot, len(keys))
	}
}

// signedAs re-signs env's encoding with key while keeping env's author,
// so that the signature verifies but the author is not the key's id.
func signedAs(t *testing.T, env *Envelope, key ed25519.PrivateKey) []byte {
	t.Helper()
	if env == nil {
		return nil
	}
	id, err := parseID(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	b := encode(env, id, pub)
	return append(b, ed25519.Sign(key, b)...)
}

// A Verifier keeps at most maxPreparedKeys keys prepared and remembers at
// most maxSeenKeys, however many keys sign.
func TestVerifierBounded(t *testing.T) {
	_, to := testKey(200)
	v := NewVerifier()
	for seed := range maxPreparedKeys + 3 {
		key, _ := testKey(byte(seed + 10))
		payloads := sealedBy(t, key, to, prepareAfter)
		envs, errs := v.OpenBatch(payloads)
		sameAsOpen(t, payloads, envs, errs)
	}
	for seed := range maxSeenKeys + 10 {
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(seed), 7}, ed25519.SeedSize/2))
		payloads := sealedBy(t, key, to, 1)
		envs, errs := v.OpenBatch(payloads)
		sameAsOpen(t, payloads, envs, errs)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hot > maxPreparedKeys || len(v.keys) > maxSeenKeys {
		t.Errorf("%d keys prepared, %d remembered; limits %d and %d", v.hot, len(v.keys), maxPreparedKeys, maxSeenKeys)
	}
	hot := 0
	for _, e := range v.keys {
		if e.prep != nil {
			hot++
		}
	}
	if hot != v.hot {
		t.Errorf("%d keys have a table, the count says %d", hot, v.hot)
	}
}

// FuzzOpenBatch: a Verifier that has prepared the payload's key (it sees
// the payload prepareAfter times) answers as Open does.
func FuzzOpenBatch(f *testing.F) {
	key, _ := testKey(1)
	_, to := testKey(2)
	for _, b := range sealedBy(f, key, to, 2) {
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	room := &Envelope{Conversation: "#general", Seq: 3, Kind: KindText, Body: "in a room"}
	if b, err := Seal(room, key); err == nil {
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("LE\x01"))
	f.Add([]byte("LE\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch := make([][]byte, prepareAfter+2)
		for i := range batch {
			batch[i] = b
		}
		envs, errs := NewVerifier().OpenBatch(batch)
		sameAsOpen(t, batch, envs, errs)
	})
}

// BenchmarkOpenBatch: opening what a stream receives, 80 envelopes at a
// time by one key, with a Verifier (as a Service does) and with Open.
func BenchmarkOpenBatch(b *testing.B) {
	key, _ := testKey(1)
	_, to := testKey(2)
	payloads := sealedBy(b, key, to, 80)
	b.Run("Verifier", func(b *testing.B) {
		v := NewVerifier()
		v.OpenBatch(payloads) // prepares the key
		b.ResetTimer()
		for range b.N {
			v.OpenBatch(payloads)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*len(payloads)), "µs/envelope")
	})
	b.Run("Open", func(b *testing.B) {
		for range b.N {
			for _, p := range payloads {
				Open(p)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*len(payloads)), "µs/envelope")
	})
}

// The limits the Verifier's doc states in numbers.
func TestVerifierLimitsAsDocumented(t *testing.T) {
	if prepareAfter != 64 || maxPreparedKeys != 8 || maxSeenKeys != 256 {
		t.Errorf("limits %d, %d, %d; the doc says 64, 8, 256", prepareAfter, maxPreparedKeys, maxSeenKeys)
	}
}
