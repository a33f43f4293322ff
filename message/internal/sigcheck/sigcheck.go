package sigcheck

import (
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"hash"
	"sync"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// niels is an affine point precomputed for mixed addition: y+x, y−x and
// 2d·x·y.
type niels struct {
	ypx, ymx, xy2d field.Element
}

// extended is a point in extended coordinates (X:Y:Z:T), x = X/Z, y = Y/Z,
// xy = T/Z.
type extended struct {
	X, Y, Z, T field.Element
}

// fixedTable holds k·2^(w·j)·P for every window j and k = 1..2^(w−1), so
// that [s]P is a sum of one entry per window (signed digits).
type fixedTable struct {
	w       uint // window width in bits
	windows int
	entries int // 2^(w-1)
	pts     []niels
}

// tableWindows is how many w-bit signed digits a scalar below 2^253 has.
// The top digit, at most 2^(253−w·(windows−1)) after the carry from
// below, must not exceed 2^(w−1), the largest multiple in a table: true
// for the widths used here, 5 to 8 (TestTableWindows).
func tableWindows(w uint) int { return (253 + int(w) - 1) / int(w) }

var (
	feOne = new(field.Element).One()
	// d2 is 2d, d = −121665/121666, the curve constant.
	d2 = func() *field.Element {
		num := new(field.Element).Mult32(feOne, 121665)
		num.Negate(num)
		den := new(field.Element).Mult32(feOne, 121666)
		d := new(field.Element).Multiply(num, den.Invert(den))
		return d.Add(d, d)
	}()
)

// newFixedTable computes the table of p for windows of w bits.
func newFixedTable(p *edwards25519.Point, w uint) *fixedTable {
	t := &fixedTable{w: w, windows: tableWindows(w), entries: 1 << (w - 1)}
	n := t.windows * t.entries
	ext := make([]extended, n)
	base := new(edwards25519.Point).Set(p)
	acc := new(edwards25519.Point)
	for j := range t.windows {
		acc.Set(base)
		for k := range t.entries {
			if k > 0 {
				acc.Add(acc, base)
			}
			e := &ext[j*t.entries+k]
			X, Y, Z, T := acc.ExtendedCoordinates()
			e.X, e.Y, e.Z, e.T = *X, *Y, *Z, *T
		}
		// The next window's base is 2^w·base = 2·(2^(w−1)·base).
		base.Add(acc, acc)
	}
	zs := make([]field.Element, n)
	for i := range ext {
		zs[i] = ext[i].Z
	}
	invertAll(zs)
	t.pts = make([]niels, n)
	var x, y field.Element
	for i := range ext {
		x.Multiply(&ext[i].X, &zs[i])
		y.Multiply(&ext[i].Y, &zs[i])
		q := &t.pts[i]
		q.ypx.Add(&y, &x)
		q.ymx.Subtract(&y, &x)
		q.xy2d.Multiply(&x, &y)
		q.xy2d.Multiply(&q.xy2d, d2)
	}
	return t
}

// invertAll replaces every element of zs by its inverse, with one field
// inversion for all (Montgomery's trick). No element may be zero; the Z of
// a point never is.
func invertAll(zs []field.Element) {
	if len(zs) == 0 {
		return
	}
	prefix := make([]field.Element, len(zs))
	prefix[0] = zs[0]
	for i := 1; i < len(zs); i++ {
		prefix[i].Multiply(&prefix[i-1], &zs[i])
	}
	var inv, t field.Element
	inv.Invert(&prefix[len(zs)-1])
	for i := len(zs) - 1; i > 0; i-- {
		t.Multiply(&inv, &prefix[i-1]) // 1/zs[i]
		inv.Multiply(&inv, &zs[i])     // 1/(zs[0]…zs[i−1])
		zs[i] = t
	}
	zs[0] = inv
}

// recode writes the signed digits of the little-endian scalar b in
// windows of w bits: b = Σ d[j]·2^(w·j), −2^(w−1) ≤ d[j] < 2^(w−1), the
// last digit small and positive as b < 2^253.
func recode(b []byte, w uint, d []int8) {
	carry := 0
	mask := 1<<w - 1
	half := 1 << (w - 1)
	for j := range d {
		bit := j * int(w)
		v := 0
		if i := bit / 8; i < len(b) {
			u := uint(b[i])
			if i+1 < len(b) {
				u |= uint(b[i+1]) << 8
			}
			v = int(u>>(bit%8)) & mask
		}
		v += carry
		carry = 0
		if v >= half && j < len(d)-1 {
			v -= 1 << w
			carry = 1
		}
		d[j] = int8(v)
	}
}

// add sets v = v + q (sub: v − q), q from a table. Seven multiplications.
func (v *extended) add(q *niels, sub bool) {
	var a, b, c, dd, e, f, g, h field.Element
	a.Subtract(&v.Y, &v.X)
	b.Add(&v.Y, &v.X)
	if sub {
		a.Multiply(&a, &q.ypx)
		b.Multiply(&b, &q.ymx)
	} else {
		a.Multiply(&a, &q.ymx)
		b.Multiply(&b, &q.ypx)
	}
	c.Multiply(&v.T, &q.xy2d)
	dd.Add(&v.Z, &v.Z)
	e.Subtract(&b, &a)
	h.Add(&b, &a)
	if sub {
		f.Add(&dd, &c)
		g.Subtract(&dd, &c)
	} else {
		f.Subtract(&dd, &c)
		g.Add(&dd, &c)
	}
	v.X.Multiply(&e, &f)
	v.Y.Multiply(&g, &h)
	v.T.Multiply(&e, &h)
	v.Z.Multiply(&f, &g)
}

// addDigits adds Σ d[j]·table[j] to v (neg: subtracts it).
func (v *extended) addDigits(t *fixedTable, d []int8, neg bool) {
	for j, dj := range d {
		if dj == 0 {
			continue
		}
		sub := dj < 0
		k := int(dj)
		if sub {
			k = -k
		}
		v.add(&t.pts[j*t.entries+k-1], sub != neg)
	}
}

// Window widths: the base point's table is shared by every Key (its 32
// windows of 128 entries take 480 KB); each Key's, 37 of 64, 280 KB.
// Each step of width is about 8% fewer additions per signature.
const (
	baseWindow = 8
	keyWindow  = 7
)

var baseTable = sync.OnceValue(func() *fixedTable {
	return newFixedTable(edwards25519.NewGeneratorPoint(), baseWindow)
})

// Key is an Ed25519 public key prepared for verifying many signatures.
// It is safe for concurrent use.
type Key struct {
	pub   [ed25519.PublicKeySize]byte
	table *fixedTable // multiples of the key's point A
	base  *fixedTable
}

// ErrBadKey is returned by NewKey for bytes that do not decode to a
// point: crypto/ed25519.Verify rejects every signature by such a key.
var ErrBadKey = errors.New("sigcheck: invalid Ed25519 public key")

// NewKey prepares pub for verifying. It costs about as much as twenty
// signature checks by crypto/ed25519, and keeps 280 KB.
func NewKey(pub ed25519.PublicKey) (*Key, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, ErrBadKey
	}
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, ErrBadKey
	}
	k := &Key{table: newFixedTable(a, keyWindow), base: baseTable()}
	copy(k.pub[:], pub)
	return k, nil
}

// PublicKey returns the key's bytes.
func (k *Key) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(k.pub[:]) }

// Verify reports whether sig is a valid signature of msg by the key, with
// crypto/ed25519.Verify's answer.
func (k *Key) Verify(msg, sig []byte) bool {
	ok := []bool{false}
	k.VerifyBatch([][]byte{msg}, [][]byte{sig}, ok)
	return ok[0]
}

// VerifyBatch sets ok[i] to whether sigs[i] is a valid signature of
// msgs[i] by the key, each as crypto/ed25519.Verify would answer it.
func (k *Key) VerifyBatch(msgs, sigs [][]byte, ok []bool) {
	if len(msgs) != len(sigs) || len(ok) != len(sigs) {
		panic("sigcheck: VerifyBatch slices of different lengths")
	}
	var (
		h         hash.Hash
		digest    [sha512.Size]byte
		sd, kd    [64]int8
		scalar    edwards25519.Scalar
		nsd, nkd  = tableWindows(k.base.w), tableWindows(k.table.w)
		points    = make([]extended, len(sigs))
		zs        = make([]field.Element, len(sigs))
		candidate = make([]bool, len(sigs))
	)
	for i, sig := range sigs {
		ok[i] = false
		if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
			continue
		}
		if _, err := scalar.SetCanonicalBytes(sig[32:]); err != nil {
			continue
		}
		recode(scalar.Bytes(), k.base.w, sd[:nsd])
		if h == nil {
			h = sha512.New()
		} else {
			h.Reset()
		}
		h.Write(sig[:32])
		h.Write(k.pub[:])
		h.Write(msgs[i])
		h.Sum(digest[:0])
		if _, err := scalar.SetUniformBytes(digest[:]); err != nil {
			continue // cannot happen: 64 bytes
		}
		recode(scalar.Bytes(), k.table.w, kd[:nkd])
		p := &points[i]
		p.X.Zero()
		p.Y.One()
		p.Z.One()
		p.T.Zero()
		p.addDigits(k.base, sd[:nsd], false) // + [S]B
		p.addDigits(k.table, kd[:nkd], true) // − [k]A
		zs[i] = p.Z
		candidate[i] = true
	}
	for i := range zs {
		if !candidate[i] {
			zs[i].One() // keeps the product invertible
		}
	}
	invertAll(zs)
	var x, y field.Element
	var enc [32]byte
	for i, sig := range sigs {
		if !candidate[i] {
			continue
		}
		x.Multiply(&points[i].X, &zs[i])
		y.Multiply(&points[i].Y, &zs[i])
		copy(enc[:], y.Bytes())
		enc[31] |= byte(x.IsNegative() << 7)
		ok[i] = [32]byte(sig[:32]) == enc
	}
}
