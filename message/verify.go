package message

import (
	"crypto/ed25519"
	"fmt"
	"runtime"
	"sync"

	"lanchat/mesh"
	"lanchat/message/internal/sigcheck"
)

// Verifier opens envelopes as Open does, many at a time and for less CPU:
// once a key has signed 64 of the envelopes it opened, it precomputes
// multiples of that key (280 KB), which makes each later check of that
// key's signatures about five times cheaper than crypto/ed25519.Verify,
// with exactly its answers (see package message/internal/sigcheck). A
// stream from one peer carries one key, so after its first envelopes
// every check is cheap. It keeps at most 8 keys prepared, the most
// recently used, and counts at most 256. It is safe for concurrent use.
type Verifier struct {
	mu   sync.Mutex         // guards the fields below
	keys map[[32]byte]*vkey // keys seen recently, at most maxSeenKeys
	tick uint64             // counts lookups; orders keys by last use
	hot  int                // how many of keys have a table
}

// vkey is what a Verifier knows of one public key.
type vkey struct {
	id        string        // the key's peer id
	seen      int           // envelopes by this key opened so far
	used      uint64        // tick of the last lookup
	prep      *sigcheck.Key // nil until prepared
	preparing bool          // a caller is preparing prep
	bad       bool          // the key does not decode: every signature fails
}

// Verifier limits.
const (
	// prepareAfter is how many of a key's envelopes a Verifier checks
	// with crypto/ed25519 before it prepares the key: preparing costs
	// about as much as twenty checks.
	prepareAfter = 64
	// maxPreparedKeys bounds the keys a Verifier keeps prepared (280 KB
	// each).
	maxPreparedKeys = 8
	// maxSeenKeys bounds the keys a Verifier counts.
	maxSeenKeys = 256
)

// NewVerifier returns a Verifier that has seen no key.
func NewVerifier() *Verifier {
	return &Verifier{keys: make(map[[32]byte]*vkey)}
}

// OpenBatch opens every payload as Open would, and returns the envelopes
// and errors in the same order: envs[i] is nil exactly when errs[i] is not.
// Unlike Open it retains the payloads: each envelope's Sealed() is its
// payload, which the caller must not modify afterwards. Large batches
// are spread over the CPUs.
func (v *Verifier) OpenBatch(payloads [][]byte) ([]*Envelope, []error) {
	envs := make([]*Envelope, len(payloads))
	errs := make([]error, len(payloads))
	workers := min(runtime.GOMAXPROCS(0), len(payloads)/32)
	if workers <= 1 {
		v.open(payloads, envs, errs)
		return envs, errs
	}
	var wg sync.WaitGroup
	per := (len(payloads) + workers - 1) / workers
	for lo := 0; lo < len(payloads); lo += per {
		hi := min(lo+per, len(payloads))
		wg.Go(func() { v.open(payloads[lo:hi], envs[lo:hi], errs[lo:hi]) })
	}
	wg.Wait()
	return envs, errs
}

// open opens payloads into envs and errs, checking the signatures of each
// key together.
func (v *Verifier) open(payloads [][]byte, envs []*Envelope, errs []error) {
	byKey := make(map[[32]byte][]int, 1)
	var order [][32]byte // keys in order of first appearance
	for i, b := range payloads {
		env, err := decode(b)
		if err != nil {
			errs[i] = err
			continue
		}
		envs[i] = env
		k := [32]byte(b[offKey : offKey+ed25519.PublicKeySize])
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	for _, k := range order {
		idx := byKey[k]
		vk, prep, id := v.lookup(k, len(idx))
		if prep == nil && vk != nil {
			prep = v.prepare(k, vk)
		}
		var ok []bool
		if prep != nil {
			msgs, sigs := make([][]byte, len(idx)), make([][]byte, len(idx))
			for j, i := range idx {
				b := payloads[i]
				msgs[j], sigs[j] = b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
			}
			ok = make([]bool, len(idx))
			prep.VerifyBatch(msgs, sigs, ok)
		}
		for j, i := range idx {
			b := payloads[i]
			var good bool
			if ok != nil {
				good = ok[j]
			} else {
				good = ed25519.Verify(k[:], b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:])
			}
			if good {
				if id == "" {
					id = mesh.IDFromPublicKey(k[:])
				}
				errs[i] = checkAuthor(envs[i], id)
			} else {
				errs[i] = fmt.Errorf("open: %w", ErrBadSignature)
			}
			if errs[i] != nil {
				envs[i] = nil
				continue
			}
			envs[i].sealed = b
		}
	}
}

// lookup counts n more envelopes by key k and returns its prepared form
// if there is one, and its peer id if known. It returns vk when the
// caller should prepare the key now.
func (v *Verifier) lookup(k [32]byte, n int) (vk *vkey, prep *sigcheck.Key, id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tick++
	e := v.keys[k]
	if e == nil {
		if len(v.keys) >= maxSeenKeys {
			v.evict(func(*vkey) bool { return true })
		}
		e = &vkey{id: mesh.IDFromPublicKey(k[:])}
		v.keys[k] = e
	}
	e.seen += n
	e.used = v.tick
	if e.prep == nil && !e.preparing && !e.bad && e.seen >= prepareAfter {
		e.preparing = true
		vk = e
	}
	return vk, e.prep, e.id
}

// prepare computes the table of key k for e, which lookup handed to this
// caller alone, and returns it (nil if the key does not decode).
func (v *Verifier) prepare(k [32]byte, e *vkey) *sigcheck.Key {
	prep, err := sigcheck.NewKey(k[:])
	v.mu.Lock()
	defer v.mu.Unlock()
	e.preparing = false
	if err != nil {
		e.bad = true
		return nil
	}
	if v.keys[k] != e {
		return prep // evicted meanwhile: use it for this batch only
	}
	if v.hot >= maxPreparedKeys {
		v.evict(func(o *vkey) bool { return o.prep != nil })
	}
	e.prep = prep
	v.hot++
	return prep
}

// evict forgets the least recently used key for which which is true.
// v.mu must be held.
func (v *Verifier) evict(which func(*vkey) bool) {
	var oldest [32]byte
	var found *vkey
	for k, e := range v.keys {
		if which(e) && (found == nil || e.used < found.used) {
			oldest, found = k, e
		}
	}
	if found == nil {
		return
	}
	delete(v.keys, oldest)
	if found.prep != nil {
		v.hot--
	}
}
