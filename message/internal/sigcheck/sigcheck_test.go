package sigcheck

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/big"
	mrand "math/rand"
	"math/rand/v2"
	"sync"
	"testing"

	"filippo.io/edwards25519"
)

// 2d is twice the curve constant of RFC 8032.
func TestCurveConstant(t *testing.T) {
	d := mustBig("37095705934669439343138083508754565189542113879843219016388785533085940283555")
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	want := reverse(new(big.Int).Mod(new(big.Int).Lsh(d, 1), p).FillBytes(make([]byte, 32)))
	if got := d2.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("2d = %x, want %x", got, want)
	}
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func TestTableWindows(t *testing.T) {
	for w := uint(5); w <= 8; w++ {
		m := tableWindows(w)
		top := 253 - int(w)*(m-1) // bits of the top digit
		if m*int(w) < 253 || 1<<top > 1<<(w-1) {
			t.Errorf("w=%d: %d windows, top digit of %d bits exceeds the table", w, m, top)
		}
	}
}

// recode's digits add up to the scalar, within their bounds.
func TestRecode(t *testing.T) {
	rng := mrand.New(mrand.NewSource(1))
	l := mustBig("7237005577332262213973186563042994240857116359379907606001950938285454250989")
	for i := range 2000 {
		v := new(big.Int).Rand(rng, l)
		switch i {
		case 0:
			v.SetInt64(0)
		case 1:
			v.Sub(l, big.NewInt(1))
		}
		b := reverse(v.FillBytes(make([]byte, 32)))
		for w := uint(5); w <= 8; w++ {
			d := make([]int8, tableWindows(w))
			recode(b, w, d)
			sum := new(big.Int)
			for j := len(d) - 1; j >= 0; j-- {
				sum.Lsh(sum, w)
				sum.Add(sum, big.NewInt(int64(d[j])))
				if int(d[j]) < -(1<<(w-1)) || int(d[j]) > 1<<(w-1) {
					t.Fatalf("w=%d: digit %d = %d out of range", w, j, d[j])
				}
			}
			if sum.Cmp(v) != 0 {
				t.Fatalf("w=%d: digits of %v add up to %v", w, v, sum)
			}
		}
	}
}

// The table's entries are the multiples they stand for.
func TestTableEntries(t *testing.T) {
	a := randomPoint(rand.New(rand.NewPCG(3, 4)))
	tab := newFixedTable(a, keyWindow)
	base := new(edwards25519.Point).Set(a)
	for j := range tab.windows {
		want := new(edwards25519.Point).Set(base)
		for k := range tab.entries {
			if k > 0 {
				want.Add(want, base)
			}
			var p extended
			p.X.Zero()
			p.Y.One()
			p.Z.One()
			p.T.Zero()
			p.add(&tab.pts[j*tab.entries+k], false)
			got, err := new(edwards25519.Point).SetExtendedCoordinates(&p.X, &p.Y, &p.Z, &p.T)
			if err != nil || got.Equal(want) != 1 {
				t.Fatalf("window %d entry %d is wrong (%v)", j, k+1, err)
			}
		}
		for range keyWindow {
			base.Add(base, base)
		}
	}
}

// randomPoint returns a point of full order 8L (or less), decoded from
// random bytes.
func randomPoint(rng *rand.Rand) *edwards25519.Point {
	var b [32]byte
	for {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if p, err := new(edwards25519.Point).SetBytes(b[:]); err == nil {
			return p
		}
	}
}

// torsion returns the 8 points of small order: [L]P for random P.
func torsion(t testing.TB) []*edwards25519.Point {
	rng := rand.New(rand.NewPCG(5, 6))
	lMinus1 := new(edwards25519.Scalar).Subtract(edwards25519.NewScalar(), scalarOne())
	seen := map[string]*edwards25519.Point{}
	for range 1000 {
		p := randomPoint(rng)
		q := new(edwards25519.Point).ScalarMult(lMinus1, p)
		q.Add(q, p) // [L]P: P's component of small order, times L
		seen[string(q.Bytes())] = q
		if len(seen) == 8 {
			break
		}
	}
	if len(seen) != 8 {
		t.Fatalf("found %d small-order points", len(seen))
	}
	var out []*edwards25519.Point
	for _, p := range seen {
		out = append(out, p)
	}
	return out
}

func scalarOne() *edwards25519.Scalar {
	var b [32]byte
	b[0] = 1
	s, _ := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	return s
}

// signer signs with full control of the scalar, the nonce point and the
// public key's encoding, to build signatures crypto/ed25519 would never
// make.
type signer struct {
	a   *edwards25519.Scalar // secret scalar
	pub []byte               // the public key as sent (any encoding of A, maybe with torsion)
}

func newSigner(seed byte, tor *edwards25519.Point) signer {
	h := sha512.Sum512(bytes.Repeat([]byte{seed}, 32))
	a, _ := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	A := new(edwards25519.Point).ScalarBaseMult(a)
	if tor != nil {
		A.Add(A, tor)
	}
	return signer{a: a, pub: A.Bytes()}
}

// sign makes (R, S) with R = [r]B + tor and S = r + k·a.
func (s signer) sign(msg []byte, r byte, tor *edwards25519.Point) []byte {
	rh := sha512.Sum512([]byte{r, 'n', 'o', 'n', 'c', 'e'})
	rs, _ := edwards25519.NewScalar().SetUniformBytes(rh[:])
	R := new(edwards25519.Point).ScalarBaseMult(rs)
	if tor != nil {
		R.Add(R, tor)
	}
	kh := sha512.New()
	kh.Write(R.Bytes())
	kh.Write(s.pub)
	kh.Write(msg)
	k, _ := edwards25519.NewScalar().SetUniformBytes(kh.Sum(nil))
	S := edwards25519.NewScalar().MultiplyAdd(k, s.a, rs)
	return append(R.Bytes(), S.Bytes()...)
}

// keys caches prepared keys across checks, as preparing is slow under
// -race; up to 64, so that fuzzing does not keep one per input.
var keys struct {
	sync.Mutex
	m map[string]keyOrErr
}

type keyOrErr struct {
	k   *Key
	err error
}

func prepared(pub []byte) (*Key, error) {
	keys.Lock()
	e, ok := keys.m[string(pub)]
	keys.Unlock()
	if ok {
		return e.k, e.err
	}
	k, err := NewKey(pub)
	keys.Lock()
	defer keys.Unlock()
	if keys.m == nil {
		keys.m = map[string]keyOrErr{}
	}
	if len(keys.m) < 64 {
		keys.m[string(pub)] = keyOrErr{k, err}
	}
	return k, err
}

// check compares Key's answer with crypto/ed25519's for one case, alone
// and within a batch of valid signatures.
func check(t *testing.T, name string, pub, msg, sig []byte) bool {
	t.Helper()
	want := ed25519.Verify(pub, msg, sig)
	k, err := prepared(pub)
	if err != nil {
		if want {
			t.Errorf("%s: NewKey: %v, but crypto/ed25519 accepts", name, err)
		}
		return want
	}
	if got := k.Verify(msg, sig); got != want {
		t.Errorf("%s: Verify = %v, crypto/ed25519 says %v", name, got, want)
	}
	msgs := [][]byte{msg, msg, msg}
	sigs := [][]byte{sig, sig, sig}
	ok := make([]bool, 3)
	k.VerifyBatch(msgs, sigs, ok)
	for i := range ok {
		if ok[i] != want {
			t.Errorf("%s: VerifyBatch[%d] = %v, crypto/ed25519 says %v", name, i, ok[i], want)
		}
	}
	return want
}

func TestMatchesCryptoEd25519(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 12 {
		pub, priv, _ := ed25519.GenerateKey(nil)
		msg := make([]byte, rng.IntN(400))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		sig := ed25519.Sign(priv, msg)
		if !check(t, fmt.Sprintf("valid %d", i), pub, msg, sig) {
			t.Fatalf("valid signature %d refused", i)
		}
		// Every single-bit change of signature or message fails.
		for range 20 {
			bad := bytes.Clone(sig)
			bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
			check(t, "flipped signature bit", pub, msg, bad)
		}
		if len(msg) > 0 {
			m := bytes.Clone(msg)
			m[rng.IntN(len(m))] ^= 1
			check(t, "flipped message bit", pub, m, sig)
		}
		check(t, "short signature", pub, msg, sig[:63])
		check(t, "long signature", pub, msg, append(bytes.Clone(sig), 0))
	}
}

// Small-order and mixed-order points, non-canonical encodings and S out of
// range: the cases where Ed25519 implementations disagree ("Taming the
// many EdDSAs", Chalkias et al. 2020). Key must agree with crypto/ed25519
// on each, including the ones a cofactored batch check would accept.
func TestEdgeCasesMatchCryptoEd25519(t *testing.T) {
	tors := torsion(t)
	msg := []byte("edge case")
	accepted, refused := 0, 0
	count := func(ok bool) {
		if ok {
			accepted++
		} else {
			refused++
		}
	}
	for i, tor := range tors {
		// R with a small-order component: valid only cofactored.
		s := newSigner(1, nil)
		for r := range 4 {
			count(check(t, fmt.Sprintf("R + T%d", i), s.pub, msg, s.sign(msg, byte(r), tor)))
		}
		// A with a small-order component (mixed order): crypto/ed25519
		// accepts exactly when [k]T happens to vanish.
		m := newSigner(2, tor)
		for r := range 8 {
			count(check(t, fmt.Sprintf("A + T%d", i), m.pub, msg, m.sign(msg, byte(r), nil)))
			count(check(t, fmt.Sprintf("A + T%d, R + T%d", i, i), m.pub, msg, m.sign(msg, byte(r), tor)))
		}
		// A of small order, R of small order, S = 0: [0]B − [k]A = R
		// holds for some k.
		for j, r := range tors {
			sig := append(r.Bytes(), make([]byte, 32)...)
			count(check(t, fmt.Sprintf("A = T%d, R = T%d, S = 0", i, j), tor.Bytes(), msg, sig))
		}
	}
	// Non-canonical encodings of A: y ≥ p, and x = 0 with the sign bit.
	s := newSigner(3, nil)
	sig := s.sign(msg, 1, nil)
	for _, enc := range nonCanonical() {
		count(check(t, "non-canonical A "+hex.EncodeToString(enc), enc, msg, sig))
		count(check(t, "non-canonical R", s.pub, msg, append(bytes.Clone(enc), sig[32:]...)))
	}
	// S = L and S = L + small: out of range, refused.
	l := reverse(mustBig("7237005577332262213973186563042994240857116359379907606001950938285454250989").FillBytes(make([]byte, 32)))
	bad := append(bytes.Clone(sig[:32]), l...)
	count(check(t, "S = L", s.pub, msg, bad))
	t.Logf("%d edge cases accepted, %d refused, each as crypto/ed25519 answered", accepted, refused)
	if accepted == 0 || refused == 0 {
		t.Errorf("edge cases do not exercise both outcomes: %d accepted, %d refused", accepted, refused)
	}
}

// nonCanonical returns encodings crypto/ed25519 decodes leniently: y
// between p and 2^255−1, and y = ±1 (x = 0) with the sign bit set.
func nonCanonical() [][]byte {
	var out [][]byte
	for v := 0; v < 19; v++ { // y = p + v
		y := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(int64(19-v)))
		out = append(out, reverse(y.FillBytes(make([]byte, 32))))
		neg := reverse(y.FillBytes(make([]byte, 32)))
		neg[31] |= 0x80
		out = append(out, neg)
	}
	one := make([]byte, 32)
	one[0] = 1
	one[31] = 0x80 // x = 0, sign bit set
	out = append(out, one)
	return out
}

func mustBig(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

// A batch with bad signatures among good ones marks exactly the bad ones.
func TestVerifyBatchMixed(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	k, err := NewKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	const n = 300
	msgs, sigs := make([][]byte, n), make([][]byte, n)
	want := make([]bool, n)
	for i := range n {
		msgs[i] = fmt.Appendf(nil, "message %d", i)
		sigs[i] = ed25519.Sign(priv, msgs[i])
		if rng.IntN(5) == 0 {
			sigs[i][rng.IntN(64)] ^= 0x10
		}
		want[i] = ed25519.Verify(pub, msgs[i], sigs[i])
	}
	ok := make([]bool, n)
	k.VerifyBatch(msgs, sigs, ok)
	for i := range ok {
		if ok[i] != want[i] {
			t.Errorf("signature %d: %v, want %v", i, ok[i], want[i])
		}
	}
	k.VerifyBatch(nil, nil, nil) // an empty batch is fine
}

// FuzzVerify: for any key, message and signature, Key answers as
// crypto/ed25519.Verify.
func FuzzVerify(f *testing.F) {
	s := newSigner(4, nil)
	msg := []byte("fuzz")
	f.Add(s.pub, msg, s.sign(msg, 1, nil))
	tors := torsion(f)
	f.Add(s.pub, msg, s.sign(msg, 2, tors[0]))
	m := newSigner(5, tors[1])
	f.Add(m.pub, msg, m.sign(msg, 3, nil))
	f.Add(tors[2].Bytes(), msg, append(tors[3].Bytes(), make([]byte, 32)...))
	f.Add(nonCanonical()[0], msg, s.sign(msg, 1, nil))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			if _, err := NewKey(pub); err == nil {
				t.Fatalf("NewKey took a key of %d bytes", len(pub))
			}
			return
		}
		check(t, "fuzz", pub, msg, sig)
	})
}

func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	const n = 256
	msgs, sigs := make([][]byte, n), make([][]byte, n)
	for i := range n {
		msgs[i] = bytes.Repeat([]byte{byte(i)}, 300)
		sigs[i] = ed25519.Sign(priv, msgs[i])
	}
	b.Run("crypto-ed25519", func(b *testing.B) {
		for i := range b.N {
			if !ed25519.Verify(pub, msgs[i%n], sigs[i%n]) {
				b.Fatal("refused")
			}
		}
	})
	k, _ := NewKey(pub)
	b.Run("Key.Verify", func(b *testing.B) {
		for i := range b.N {
			if !k.Verify(msgs[i%n], sigs[i%n]) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("Key.VerifyBatch-256", func(b *testing.B) {
		ok := make([]bool, n)
		for range b.N / n {
			k.VerifyBatch(msgs, sigs, ok)
		}
		for i := range ok {
			if b.N >= n && !ok[i] {
				b.Fatal("refused")
			}
		}
	})
	b.Run("NewKey", func(b *testing.B) {
		for range b.N {
			NewKey(pub)
		}
	})
}
