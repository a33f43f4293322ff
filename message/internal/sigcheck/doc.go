// Package sigcheck verifies Ed25519 signatures with exactly the result of
// crypto/ed25519.Verify, signature for signature, at a fraction of its CPU
// cost when many signatures are by the same key: a Key precomputes
// multiples of the public key, as crypto/ed25519 does of the base point,
// so that checking a signature takes additions only, and VerifyBatch
// shares the one field inversion among a batch.
//
// It computes what crypto/ed25519 computes, R' = [S]B − [k]A with
// k = SHA-512(R ‖ A ‖ M), and accepts exactly when R' encodes to the
// signature's R bytes, S is canonical and A decodes (non-canonical
// encodings of A accepted, as crypto/ed25519 and filippo.io/edwards25519
// do). It is no probabilistic batch verification: no signature passes that
// crypto/ed25519 refuses, small-order and mixed-order points included.
// Verification handles public data only, so nothing here is constant-time.
package sigcheck
