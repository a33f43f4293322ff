package message

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Frame layout constants; see doc.go.
const (
	frameMagic0, frameMagic1 = 'L', 'M'
	// FrameHeaderLen is the size of a frame header: magic, type, length.
	FrameHeaderLen = 7
	// MaxFrame is the largest frame payload of any type. A header announcing
	// more is refused with ErrTooLarge before anything is allocated.
	MaxFrame = 128 << 10
	// MaxReason is the longest reason, in bytes, in an ACK or CLOSE frame.
	MaxReason = 255

	ackFixedLen = idLen + 2 // id, status, reason length
)

// FrameType is the third byte of a frame header.
type FrameType byte

// Frame types. A frame of any other type ends the stream.
const (
	// FrameMsg carries one sealed envelope (client → server).
	FrameMsg FrameType = 0x01
	// FrameAck acknowledges one FrameMsg by message id (server → client).
	FrameAck FrameType = 0x02
	// FrameClose says the sender is closing the stream, and why (either way).
	FrameClose FrameType = 0x03
)

func (t FrameType) String() string {
	switch t {
	case FrameMsg:
		return "MSG"
	case FrameAck:
		return "ACK"
	case FrameClose:
		return "CLOSE"
	}
	return fmt.Sprintf("FrameType(%#02x)", byte(t))
}

// maxPayload is the payload limit of each known frame type, 0 if unknown.
func (t FrameType) maxPayload() int {
	switch t {
	case FrameMsg:
		return MaxEnvelope
	case FrameAck:
		return ackFixedLen + MaxReason
	case FrameClose:
		return MaxReason
	}
	return 0
}

// Frame is one decoded frame.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// AppendFrame appends the encoding of one frame to dst. The caller keeps
// payloads within their limits; ReadFrame refuses any that are not.
func AppendFrame(dst []byte, t FrameType, payload []byte) []byte {
	return AppendFrameOf(dst, [2]byte{frameMagic0, frameMagic1}, t, payload)
}

// ReadFrame reads one frame from r. It checks the magic, that the type is
// known and that the length is within that type's limit (and MaxFrame)
// before allocating the payload, so a peer can make it allocate at most
// MaxFrame bytes. Errors wrap ErrMalformed, ErrTooLarge, io.EOF (nothing
// read at all) or io.ErrUnexpectedEOF (a frame cut short), or are r's.
func ReadFrame(r io.Reader) (Frame, error) {
	t, p, err := ReadFrameOf(r, [2]byte{frameMagic0, frameMagic1}, func(t FrameType) (int, bool) {
		limit := t.maxPayload()
		return min(limit, MaxFrame), limit != 0
	})
	if err != nil {
		return Frame{}, err
	}
	return Frame{Type: t, Payload: p}, nil
}

// AppendFrameOf appends one frame of a protocol that shares this frame
// header (two magic bytes, a type, a 4-byte big-endian length) with its
// own magic and types: the sync protocol's (message/roomsync) is one.
func AppendFrameOf[T ~byte](dst []byte, magic [2]byte, t T, payload []byte) []byte {
	dst = append(dst, magic[0], magic[1], byte(t))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// ReadFrameOf reads one frame of such a protocol: limit gives the largest
// payload of a type, and ok false for a type the protocol does not know.
// The magic, the type and the length are checked before the payload is
// allocated; the errors are ReadFrame's.
func ReadFrameOf[T ~byte](r io.Reader, magic [2]byte, limit func(T) (most int, ok bool)) (T, []byte, error) {
	var h [FrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0] != magic[0] || h[1] != magic[1] {
		return 0, nil, fmt.Errorf("%w: bad frame magic %#x", ErrMalformed, h[:2])
	}
	t := T(h[2])
	most, ok := limit(t)
	if !ok {
		return 0, nil, fmt.Errorf("%w: unknown frame type %#02x", ErrMalformed, h[2])
	}
	n := binary.BigEndian.Uint32(h[3:])
	if uint64(n) > uint64(most) {
		return 0, nil, fmt.Errorf("%w: %v frame of %d bytes, limit %d", ErrTooLarge, t, n, most)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("%v frame payload: %w", t, err)
	}
	return t, p, nil
}

// AckStatus is the outcome an ACK frame reports.
type AckStatus byte

// Ack statuses.
const (
	// AckOK: the message was new and was delivered.
	AckOK AckStatus = 0
	// AckDuplicate: the message had been delivered before; it was not
	// delivered again. For the sender this is success too.
	AckDuplicate AckStatus = 1
	// AckRejected: the message was refused; the reason says why.
	AckRejected AckStatus = 2
)

func (s AckStatus) String() string {
	switch s {
	case AckOK:
		return "ok"
	case AckDuplicate:
		return "duplicate"
	case AckRejected:
		return "rejected"
	}
	return fmt.Sprintf("AckStatus(%d)", byte(s))
}

// Ack is the payload of an ACK frame.
type Ack struct {
	ID     [idLen]byte // the acknowledged message's id, raw
	Status AckStatus
	Reason string // only with AckRejected; valid UTF-8, at most MaxReason bytes
}

// AppendAck appends the ACK frame payload for a to dst, cutting the reason
// to MaxReason bytes of valid UTF-8.
func AppendAck(dst []byte, a Ack) []byte {
	dst = append(dst, a.ID[:]...)
	dst = append(dst, byte(a.Status))
	r := clipReason(a.Reason)
	dst = append(dst, byte(len(r)))
	return append(dst, r...)
}

// appendAckFrame appends a whole ACK frame for a to dst, as
// AppendFrame(dst, FrameAck, AppendAck(nil, a)) does, without the
// intermediate payload.
func appendAckFrame(dst []byte, a Ack) []byte {
	r := clipReason(a.Reason)
	dst = append(dst, frameMagic0, frameMagic1, byte(FrameAck))
	dst = binary.BigEndian.AppendUint32(dst, uint32(ackFixedLen+len(r)))
	dst = append(dst, a.ID[:]...)
	dst = append(dst, byte(a.Status), byte(len(r)))
	return append(dst, r...)
}

// ParseAck decodes an ACK frame payload strictly; errors wrap ErrMalformed.
func ParseAck(p []byte) (Ack, error) {
	var a Ack
	if len(p) < ackFixedLen {
		return a, fmt.Errorf("%w: ack of %d bytes", ErrMalformed, len(p))
	}
	copy(a.ID[:], p)
	a.Status = AckStatus(p[idLen])
	n := int(p[idLen+1])
	if len(p) != ackFixedLen+n {
		return a, fmt.Errorf("%w: ack reason length %d in %d bytes", ErrMalformed, n, len(p))
	}
	switch a.Status {
	case AckOK, AckDuplicate:
		if n != 0 {
			return a, fmt.Errorf("%w: reason with ack status %v", ErrMalformed, a.Status)
		}
	case AckRejected:
	default:
		return a, fmt.Errorf("%w: unknown ack status %d", ErrMalformed, p[idLen])
	}
	r, err := parseReason(p[ackFixedLen:])
	a.Reason = r
	return a, err
}

// parseReason checks a reason of an ACK or CLOSE frame.
func parseReason(p []byte) (string, error) {
	if len(p) > MaxReason {
		return "", fmt.Errorf("%w: reason of %d bytes", ErrMalformed, len(p))
	}
	if !utf8.Valid(p) {
		return "", fmt.Errorf("%w: reason is not valid UTF-8", ErrMalformed)
	}
	return string(p), nil
}

// clipReason makes s valid UTF-8 of at most MaxReason bytes.
func clipReason(s string) string { return clip(s, MaxReason) }

// clip makes s valid UTF-8 of at most n bytes, cut at a rune boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
