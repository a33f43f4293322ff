package mesh

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"lanchat/internal/fsutil"
)

// IDLen is the length of a peer id: base32 (RFC 4648, no padding) of a
// 32-byte SHA-256 digest.
const IDLen = 52

// ShortIDLen is how many leading characters of an id are shown to people.
const ShortIDLen = 7

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// KeyFile is the name of the private key inside the data directory.
const KeyFile = "identity.key"

// maxKeyFile bounds the key file read: a PEM Ed25519 key is ~120 bytes.
const maxKeyFile = 64 << 10

// IDFromPublicKey returns the peer id of an Ed25519 public key: the base32
// SHA-256 of its 32 raw bytes, as Syncthing does for device ids. Anyone can
// recompute it from the certificate a peer presents, so an id cannot be
// claimed without the key.
func IDFromPublicKey(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return idEncoding.EncodeToString(sum[:])
}

// ValidID reports whether s has the form of a peer id.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// ShortID is the prefix of id shown in listings.
func ShortID(id string) string {
	if len(id) <= ShortIDLen {
		return id
	}
	return id[:ShortIDLen]
}

// Identity is this node's long-lived key and the id derived from it.
type Identity struct {
	Key ed25519.PrivateKey
	ID  string
}

// Public returns the public half of the key.
func (id *Identity) Public() ed25519.PublicKey { return id.Key.Public().(ed25519.PublicKey) }

// LoadOrCreateIdentity reads the key kept in dir, creating dir (0700) and a
// new key (0600) on first start. A key file that exists but cannot be read
// or parsed is an error: silently replacing it would change who we are.
func LoadOrCreateIdentity(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	b, err := fsutil.ReadFileLimit(path, maxKeyFile)
	switch {
	case err == nil:
		return parseIdentity(path, b)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read identity: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// Write to a temporary name and link it into place so that two first
	// starts racing cannot leave a half-written key, and the loser adopts
	// the winner's key.
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if _, err := tmp.Write(pemBytes); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateIdentity(dir)
		}
		return nil, fmt.Errorf("write identity: %w", err)
	}
	return &Identity{Key: priv, ID: IDFromPublicKey(priv.Public().(ed25519.PublicKey))}, nil
}

func parseIdentity(path string, b []byte) (*Identity, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("identity %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity %s: not an Ed25519 key", path)
	}
	return &Identity{Key: priv, ID: IDFromPublicKey(priv.Public().(ed25519.PublicKey))}, nil
}

// normalizeID upper-cases a user-typed id or id prefix; ids are case-blind
// to people (DNS lower-cases them, people retype them).
func normalizeID(s string) string { return strings.ToUpper(s) }
