package message

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"lanchat/mesh"
)

// Limits of the envelope fields, in bytes. See doc.go for the layout.
const (
	// MaxText is the largest body, in bytes. A larger body is refused with
	// ErrTooLarge before anything is sent.
	MaxText = 64 << 10
	// MaxName is the largest author display name.
	MaxName = 256
	// MaxKind is the longest kind.
	MaxKind = 32
	// MaxConversation is the longest conversation field. Room names
	// (ValidRoom) are shorter; the field's limit is kept for the layout.
	MaxConversation = 128

	// MaxEnvelope is the largest sealed envelope of either version: the
	// larger (version 2) fixed part, every variable field at its limit
	// with its length prefix, and the signature.
	MaxEnvelope = envFixedLenV2 +
		2 + mesh.IDLen + // author
		2 + mesh.IDLen + // to
		2 + MaxConversation +
		2 + MaxKind +
		2 + MaxName +
		4 + MaxText +
		ed25519.SignatureSize
)

// KindText is the kind of a plain chat message whose Body is the text.
const KindText = "text"

// Envelope layout constants.
const (
	envMagic0, envMagic1 = 'L', 'E'
	// EnvelopeV1 is the version byte of a direct message (To set,
	// Conversation empty).
	EnvelopeV1 = 1
	// EnvelopeV2 is the version byte of a room event (Conversation a room,
	// To empty): version 1's layout with Seq after the logical counter.
	EnvelopeV2 = 2
	idLen      = 16 // raw bytes of a message id

	offID         = 3
	offKey        = offID + idLen
	offWall       = offKey + ed25519.PublicKeySize
	offLogical    = offWall + 8
	envFixedLen   = offLogical + 4 // version 1's fixed part
	offSeq        = envFixedLen    // version 2 only
	envFixedLenV2 = offSeq + 8
)

// Envelope is one message as its author wrote it. Seal turns it into the
// signed bytes that travel; Open turns such bytes back into an Envelope.
// Changing a field after Seal or Open does not change Sealed().
type Envelope struct {
	// ID is 32 lowercase hex characters (16 random bytes), unique per
	// message. Seal fills it in when empty.
	ID string
	// Author is the peer id of the writer; it is the id of the key that
	// signed the envelope. Seal fills it in when empty.
	Author string
	// AuthorName is the writer's display name when writing. Receivers learn
	// the name of a peer that is not in their member list from it.
	AuthorName string
	// To is the recipient's peer id for a direct message, empty for a
	// room event.
	To string
	// Conversation is the room ("#general", see ValidRoom) of a room
	// event, empty for a direct message. Seal writes a room event as
	// envelope version 2, a direct message as version 1.
	Conversation string
	// Seq numbers a room event among its author's events in that room:
	// 1 for the first, each next one more. 0 for a direct message.
	Seq uint64
	// Time is the author's hybrid logical clock when writing.
	Time Timestamp
	// Kind says what Body holds: KindText for now. Lowercase ASCII
	// letters, digits, '.', '-' and '_', 1 to MaxKind bytes.
	Kind string
	// Body is the content: valid UTF-8 without NUL, at most MaxText bytes.
	Body string

	sealed []byte // the signed bytes followed by the signature; nil until sealed or opened
}

// Sealed returns the exact bytes that were signed followed by the signature,
// as Seal produced them or Open received them; nil for an envelope that was
// neither. They are what a store keeps and what SendEnvelope re-sends. The
// caller must not modify them.
func (e *Envelope) Sealed() []byte { return e.sealed }

// Signature returns the Ed25519 signature over the encoded envelope, or nil.
func (e *Envelope) Signature() []byte {
	if len(e.sealed) < ed25519.SignatureSize {
		return nil
	}
	return e.sealed[len(e.sealed)-ed25519.SignatureSize:]
}

// Version returns the envelope version byte of the sealed bytes
// (EnvelopeV1 or EnvelopeV2), or 0 for an envelope neither sealed nor
// opened.
func (e *Envelope) Version() byte {
	if len(e.sealed) < envFixedLen {
		return 0
	}
	return e.sealed[2]
}

// PublicKey returns the author's public key carried in the envelope, or nil.
func (e *Envelope) PublicKey() ed25519.PublicKey {
	if len(e.sealed) < envFixedLen {
		return nil
	}
	return ed25519.PublicKey(e.sealed[offKey : offKey+ed25519.PublicKeySize])
}

// Compare orders envelopes as conversations show them: by Time, then by
// author id, then by message id (OrderKey). It returns -1, 0 or +1.
func Compare(a, b *Envelope) int { return a.OrderKey().Compare(b.OrderKey()) }

// OrderKey is what places a message in its conversation. It is the one
// definition of conversation order: Compare uses it, and so does the
// history store for what it sorts itself.
type OrderKey struct {
	Time   Timestamp // the author's clock when writing
	Author string    // the author's peer id, compared bytewise
	ID     string    // the message id, compared bytewise
}

// OrderKey returns the key that places env in its conversation.
func (e *Envelope) OrderKey() OrderKey { return OrderKey{Time: e.Time, Author: e.Author, ID: e.ID} }

// Compare returns -1, 0 or +1 as k sorts before, with or after o: by
// Time (wall, then logical), then Author, then ID.
func (k OrderKey) Compare(o OrderKey) int {
	if c := k.Time.Compare(o.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Author, o.Author); c != 0 {
		return c
	}
	return cmp.Compare(k.ID, o.ID)
}

// NewID returns a fresh message id: 32 lowercase hex characters of 16
// bytes, the first 6 the current Unix time in milliseconds (big-endian),
// the other 10 random. Ids written close together in time share a prefix,
// so the index of ids in a history grows at its end as messages arrive
// instead of being written all over (which took a third of the log a
// history wrote); 80 random bits a millisecond keep them unique. Readers
// must treat ids as opaque: older and other peers' ids are all random.
func NewID() string {
	var b [idLen]byte
	rand.Read(b[6:]) // never fails (crypto/rand documents it)
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	return hex.EncodeToString(b[:])
}

// Seal encodes env and signs it with key, returning the sealed bytes (also
// kept in env, see Sealed). It fills in env.ID when empty and env.Author
// when empty; an Author that is not the id of key is refused. An envelope
// with a Conversation is a room event and sealed as version 2, any other
// as version 1 (see doc.go). Fields outside their limits, and envelopes
// breaking their version's rules, are refused with ErrMalformed, or
// ErrTooLarge for a body over MaxText.
func Seal(env *Envelope, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal: invalid private key length %d", len(key))
	}
	pub := key.Public().(ed25519.PublicKey)
	self := mesh.IDFromPublicKey(pub)
	if env.Author == "" {
		env.Author = self
	}
	if env.Author != self {
		return nil, fmt.Errorf("seal: %w: author %s is not the signing key's id %s",
			ErrMalformed, mesh.ShortID(env.Author), mesh.ShortID(self))
	}
	if env.ID == "" {
		env.ID = NewID()
	}
	if len(env.Body) > MaxText {
		// Checked first so a huge body costs nothing more.
		return nil, fmt.Errorf("seal: %w: body of %d bytes, limit %d", ErrTooLarge, len(env.Body), MaxText)
	}
	id, err := parseID(env.ID)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := validate(env); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	b := encode(env, id, pub)
	b = append(b, ed25519.Sign(key, b)...)
	env.sealed = b
	return b, nil
}

// versionOf is the envelope version env is written in: 2 for a room
// event, 1 for a direct message.
func versionOf(env *Envelope) byte {
	if env.Conversation != "" {
		return EnvelopeV2
	}
	return EnvelopeV1
}

// encode appends the unsigned encoding of env to a new slice sized for the
// signature too, in the version versionOf picks. It does not validate.
func encode(env *Envelope, id [idLen]byte, pub ed25519.PublicKey) []byte {
	v := versionOf(env)
	fixed := envFixedLen
	if v == EnvelopeV2 {
		fixed = envFixedLenV2
	}
	n := fixed + 2 + len(env.Author) + 2 + len(env.To) + 2 + len(env.Conversation) +
		2 + len(env.Kind) + 2 + len(env.AuthorName) + 4 + len(env.Body)
	b := make([]byte, 0, n+ed25519.SignatureSize)
	b = append(b, envMagic0, envMagic1, v)
	b = append(b, id[:]...)
	b = append(b, pub...)
	b = binary.BigEndian.AppendUint64(b, uint64(env.Time.Wall))
	b = binary.BigEndian.AppendUint32(b, env.Time.Logical)
	if v == EnvelopeV2 {
		b = binary.BigEndian.AppendUint64(b, env.Seq)
	}
	for _, s := range []string{env.Author, env.To, env.Conversation, env.Kind, env.AuthorName} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(env.Body)))
	b = append(b, env.Body...)
	return b
}

// Open decodes sealed bytes and verifies them: the layout and every field
// limit (ErrMalformed, ErrTooLarge), then the signature with the public key
// the envelope carries and that Author is that key's id (ErrBadSignature).
// It needs nothing else, so a relayed envelope can be checked too. It does
// not retain b. A Verifier opens many envelopes at once for less.
func Open(b []byte) (*Envelope, error) {
	env, err := decode(b)
	if err != nil {
		return nil, err
	}
	signed, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	pub := ed25519.PublicKey(b[offKey : offKey+ed25519.PublicKeySize])
	if !ed25519.Verify(pub, signed, sig) {
		return nil, fmt.Errorf("open: %w", ErrBadSignature)
	}
	if err := checkAuthor(env, mesh.IDFromPublicKey(pub)); err != nil {
		return nil, err
	}
	env.sealed = bytes.Clone(b)
	return env, nil
}

// checkAuthor refuses an envelope whose Author is not id, the peer id of
// the key that signed it.
func checkAuthor(env *Envelope, id string) error {
	if env.Author != id {
		return fmt.Errorf("open: %w: author %s is not the signing key's id %s",
			ErrBadSignature, mesh.ShortID(env.Author), mesh.ShortID(id))
	}
	return nil
}

// decode is Open without the signature and author checks: the layout and
// every field limit. The result's sealed bytes are not set.
func decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("open: %w: envelope of %d bytes, limit %d", ErrTooLarge, len(b), MaxEnvelope)
	}
	if len(b) < envFixedLen+ed25519.SignatureSize {
		return nil, fmt.Errorf("open: %w: envelope of %d bytes is too short", ErrMalformed, len(b))
	}
	if b[0] != envMagic0 || b[1] != envMagic1 {
		return nil, fmt.Errorf("open: %w: bad magic %#x", ErrMalformed, b[:2])
	}
	version := b[2]
	fixed := envFixedLen
	switch version {
	case EnvelopeV1:
	case EnvelopeV2:
		fixed = envFixedLenV2
		if len(b) < fixed+ed25519.SignatureSize {
			return nil, fmt.Errorf("open: %w: envelope of %d bytes is too short", ErrMalformed, len(b))
		}
	default:
		return nil, fmt.Errorf("open: %w: unknown envelope version %d", ErrMalformed, version)
	}
	signed := b[:len(b)-ed25519.SignatureSize]
	env := &Envelope{
		ID: hex.EncodeToString(b[offID : offID+idLen]),
		Time: Timestamp{
			Wall:    int64(binary.BigEndian.Uint64(b[offWall:])),
			Logical: binary.BigEndian.Uint32(b[offLogical:]),
		},
	}
	if version == EnvelopeV2 {
		env.Seq = binary.BigEndian.Uint64(b[offSeq:])
	}
	d := decoder{b: signed, off: fixed}
	env.Author = d.str16(mesh.IDLen, "author")
	env.To = d.str16(mesh.IDLen, "to")
	env.Conversation = d.str16(MaxConversation, "conversation")
	env.Kind = d.str16(MaxKind, "kind")
	env.AuthorName = d.str16(MaxName, "author name")
	env.Body = d.body()
	if d.err == nil && d.off != len(signed) {
		d.err = fmt.Errorf("%w: %d bytes after the body", ErrMalformed, len(signed)-d.off)
	}
	if d.err != nil {
		return nil, fmt.Errorf("open: %w", d.err)
	}
	if err := validate(env); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if v := versionOf(env); v != version {
		// A version 1 envelope with a conversation, or a version 2 one
		// without: each kind of envelope has one version, and so one
		// encoding.
		return nil, fmt.Errorf("open: %w: version %d envelope with the fields of version %d", ErrMalformed, version, v)
	}
	return env, nil
}

// decoder reads length-prefixed fields from b, keeping the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

// str16 reads a uint16 length and that many bytes, at most limit.
func (d *decoder) str16(limit int, field string) string {
	if d.err != nil {
		return ""
	}
	if len(d.b)-d.off < 2 {
		d.err = fmt.Errorf("%w: truncated before %s", ErrMalformed, field)
		return ""
	}
	n := int(binary.BigEndian.Uint16(d.b[d.off:]))
	d.off += 2
	if n > limit {
		d.err = fmt.Errorf("%w: %s of %d bytes, limit %d", ErrMalformed, field, n, limit)
		return ""
	}
	if len(d.b)-d.off < n {
		d.err = fmt.Errorf("%w: truncated %s", ErrMalformed, field)
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

// body reads a uint32 length and that many bytes, at most MaxText.
func (d *decoder) body() string {
	if d.err != nil {
		return ""
	}
	if len(d.b)-d.off < 4 {
		d.err = fmt.Errorf("%w: truncated before body", ErrMalformed)
		return ""
	}
	n := uint64(binary.BigEndian.Uint32(d.b[d.off:]))
	d.off += 4
	if n > MaxText {
		d.err = fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, n, MaxText)
		return ""
	}
	if uint64(len(d.b)-d.off) < n {
		d.err = fmt.Errorf("%w: truncated body", ErrMalformed)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

// validate checks every field of env against the limits of doc.go. The
// error wraps ErrMalformed, or ErrTooLarge for an oversized body.
func validate(env *Envelope) error {
	if !mesh.ValidID(env.Author) {
		return fmt.Errorf("%w: invalid author id %q", ErrMalformed, env.Author)
	}
	if env.Conversation == "" {
		// Version 1, a direct message.
		if !mesh.ValidID(env.To) {
			return fmt.Errorf("%w: invalid recipient id %q", ErrMalformed, env.To)
		}
		if env.Seq != 0 {
			return fmt.Errorf("%w: seq %d in a direct message", ErrMalformed, env.Seq)
		}
		if env.Kind == KindJoin || env.Kind == KindLeave {
			return fmt.Errorf("%w: %s outside a room", ErrMalformed, env.Kind)
		}
	} else {
		// Version 2, a room event.
		if !ValidRoom(env.Conversation) {
			return fmt.Errorf("%w: invalid room name %q", ErrMalformed, env.Conversation)
		}
		if env.To != "" {
			return fmt.Errorf("%w: room event with a recipient", ErrMalformed)
		}
		if env.Seq == 0 {
			return fmt.Errorf("%w: room event with seq 0", ErrMalformed)
		}
		if (env.Kind == KindJoin || env.Kind == KindLeave) && env.Body != "" {
			return fmt.Errorf("%w: %s with a body", ErrMalformed, env.Kind)
		}
	}
	if env.Time.Wall < 0 {
		return fmt.Errorf("%w: negative time %d", ErrMalformed, env.Time.Wall)
	}
	if err := checkText("conversation", env.Conversation, MaxConversation); err != nil {
		return err
	}
	if err := checkText("author name", env.AuthorName, MaxName); err != nil {
		return err
	}
	if len(env.Body) > MaxText {
		return fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, len(env.Body), MaxText)
	}
	if err := checkText("body", env.Body, MaxText); err != nil {
		return err
	}
	if !validKind(env.Kind) {
		return fmt.Errorf("%w: invalid kind %q", ErrMalformed, env.Kind)
	}
	return nil
}

// checkText refuses text over limit bytes, invalid UTF-8 and NUL bytes.
// Other control characters pass: display code sanitises them.
func checkText(field, s string, limit int) error {
	switch {
	case len(s) > limit:
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrMalformed, field, len(s), limit)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, field)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL byte", ErrMalformed, field)
	}
	return nil
}

func validKind(k string) bool {
	if len(k) == 0 || len(k) > MaxKind {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseID decodes a message id: exactly 32 lowercase hex characters.
func parseID(s string) ([idLen]byte, error) {
	var id [idLen]byte
	if len(s) != 2*idLen {
		return id, fmt.Errorf("%w: message id %q is not %d hex characters", ErrMalformed, s, 2*idLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return id, fmt.Errorf("%w: message id %q is not lowercase hex", ErrMalformed, s)
		}
	}
	hex.Decode(id[:], []byte(s))
	return id, nil
}

// dedupKey identifies a message for de-duplication: its id and the first
// 16 bytes of SHA-256 of its author's key, so that nobody can suppress
// another author's message by reusing its id.
type dedupKey [2 * idLen]byte

func keyOf(sealed []byte) dedupKey {
	var k dedupKey
	copy(k[:idLen], sealed[offID:offID+idLen])
	sum := sha256.Sum256(sealed[offKey : offKey+ed25519.PublicKeySize])
	copy(k[idLen:], sum[:idLen])
	return k
}

// peekID returns the raw message id of possibly malformed sealed bytes, if
// they are long enough and carry the envelope magic, so that a refusal can
// still be acknowledged.
func peekID(b []byte) ([idLen]byte, bool) {
	var id [idLen]byte
	if len(b) < offID+idLen || b[0] != envMagic0 || b[1] != envMagic1 {
		return id, false
	}
	copy(id[:], b[offID:])
	return id, true
}
