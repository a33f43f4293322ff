package roomsync

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"lanchat/mesh"
	"lanchat/message"
)

// Frame layout constants; see doc.go.
const (
	frameMagic0, frameMagic1 = 'L', 'S'
	// FrameHeaderLen is the size of a frame header: magic, type, length.
	FrameHeaderLen = 7
	// MaxVectorLen is the most authors a PULL frame's vector may name.
	MaxVectorLen = 4096
	// MaxPage is the largest PAGE frame payload, in bytes.
	MaxPage = 1 << 20
	// MaxReason is the longest reason of a CLOSE or REFUSE frame.
	MaxReason = 255

	vectorEntryLen = mesh.IDLen + 8
	maxPullPayload = 1 + 1 + message.MaxRoomName + 2 + MaxVectorLen*vectorEntryLen
	headLen        = mesh.IDLen + 8 + 8
	pageHeaderLen  = 2      // the count of envelopes
	maxPageCount   = 0xffff // the most envelopes the count can say
)

// FrameType is the third byte of a frame header.
type FrameType byte

// Frame types. A frame of any other type, or of the wrong direction, ends
// the stream.
const (
	FramePull   FrameType = 0x01 // client → server: a room and the client's vector
	FrameIndex  FrameType = 0x02 // client → server: asks for the server's memberships
	FrameClose  FrameType = 0x03 // either way: the sender closes the stream, and why
	FrameHead   FrameType = 0x04 // server → client: the events of one author that follow
	FramePage   FrameType = 0x05 // server → client: sealed envelopes
	FrameDone   FrameType = 0x06 // server → client: the answer is complete
	FrameRefuse FrameType = 0x07 // server → client: the request is not served, and why
	FrameState  FrameType = 0x08 // server → client: the room's retention events, before the first HEAD
)

// MaxState is the most envelopes a STATE frame carries: the retention
// events a server keeps of a room (store.MaxRetentionEvents).
const MaxState = 256

func (t FrameType) String() string {
	switch t {
	case FramePull:
		return "PULL"
	case FrameIndex:
		return "INDEX"
	case FrameClose:
		return "CLOSE"
	case FrameHead:
		return "HEAD"
	case FramePage:
		return "PAGE"
	case FrameDone:
		return "DONE"
	case FrameRefuse:
		return "REFUSE"
	case FrameState:
		return "STATE"
	}
	return fmt.Sprintf("FrameType(%#02x)", byte(t))
}

// maxPayload is the payload limit of each known frame type, -1 if unknown.
func (t FrameType) maxPayload() int {
	switch t {
	case FramePull:
		return maxPullPayload
	case FrameIndex, FrameDone:
		return 0
	case FrameClose:
		return MaxReason
	case FrameHead:
		return headLen
	case FramePage, FrameState:
		return MaxPage
	case FrameRefuse:
		return 1 + MaxReason
	}
	return -1
}

// Frame is one decoded frame.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// frameMagic is the sync protocol's: its frame header is message's.
var frameMagic = [2]byte{frameMagic0, frameMagic1}

// appendFrame appends one frame to dst.
func appendFrame(dst []byte, t FrameType, payload []byte) []byte {
	return message.AppendFrameOf(dst, frameMagic, t, payload)
}

// ReadFrame reads one frame from r. The magic, the type and the length
// (against the type's limit) are checked before the payload is
// allocated, so a peer can make it allocate at most maxPullPayload or
// MaxPage bytes. Errors wrap message.ErrMalformed, message.ErrTooLarge,
// io.EOF (nothing read), io.ErrUnexpectedEOF (a frame cut short), or are
// r's.
func ReadFrame(r io.Reader) (Frame, error) {
	t, p, err := message.ReadFrameOf(r, frameMagic, func(t FrameType) (int, bool) {
		limit := t.maxPayload()
		return limit, limit >= 0
	})
	if err != nil {
		return Frame{}, err
	}
	return Frame{Type: t, Payload: p}, nil
}

// Vector says, for each author, how many of their events in a room a node
// holds: all of seq 1..n. An author it holds none of is absent (or 0).
type Vector map[string]uint64

// pull is a decoded PULL frame.
type pull struct {
	room string
	have Vector
}

// appendPull appends the PULL payload for room and have to dst: the
// authors of have with a count above 0, ascending. The caller checks the
// room name and the vector's size.
func appendPull(dst []byte, room string, have Vector) []byte {
	authors := make([]string, 0, len(have))
	for a, n := range have {
		if n > 0 {
			authors = append(authors, a)
		}
	}
	slices.Sort(authors)
	dst = append(dst, byte(len(room)))
	dst = append(dst, room...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(authors)))
	for _, a := range authors {
		dst = append(dst, a...)
		dst = binary.BigEndian.AppendUint64(dst, have[a])
	}
	return dst
}

// vectorLen is how many entries appendPull writes for have.
func vectorLen(have Vector) int {
	n := 0
	for _, c := range have {
		if c > 0 {
			n++
		}
	}
	return n
}

// parsePull decodes a PULL payload strictly: a valid room name, at most
// maxAuthors entries, author ids valid and strictly ascending, counts at
// least 1, nothing after. Errors wrap message.ErrMalformed, or
// message.ErrTooLarge for a vector over maxAuthors.
func parsePull(p []byte, maxAuthors int) (pull, error) {
	if len(p) < 1 || len(p) < 1+int(p[0])+2 {
		return pull{}, fmt.Errorf("%w: pull of %d bytes", message.ErrMalformed, len(p))
	}
	r := int(p[0])
	room := string(p[1 : 1+r])
	if !message.ValidRoom(room) {
		return pull{}, fmt.Errorf("%w: invalid room name %q", message.ErrMalformed, room)
	}
	p = p[1+r:]
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n > maxAuthors || n > MaxVectorLen {
		return pull{}, fmt.Errorf("%w: vector of %d authors, limit %d", message.ErrTooLarge, n, min(maxAuthors, MaxVectorLen))
	}
	if len(p) != n*vectorEntryLen {
		return pull{}, fmt.Errorf("%w: %d vector entries in %d bytes", message.ErrMalformed, n, len(p))
	}
	have := make(Vector, n)
	var prev []byte
	for i := range n {
		e := p[i*vectorEntryLen : (i+1)*vectorEntryLen]
		id := e[:mesh.IDLen]
		if !mesh.ValidID(string(id)) {
			return pull{}, fmt.Errorf("%w: invalid author id %q", message.ErrMalformed, id)
		}
		if prev != nil && bytes.Compare(prev, id) >= 0 {
			return pull{}, fmt.Errorf("%w: vector authors not strictly ascending", message.ErrMalformed)
		}
		prev = id
		c := binary.BigEndian.Uint64(e[mesh.IDLen:])
		if c == 0 {
			return pull{}, fmt.Errorf("%w: vector count 0", message.ErrMalformed)
		}
		have[string(id)] = c
	}
	return pull{room: room, have: have}, nil
}

// head is a decoded HEAD frame: the events of author after..until follow
// (seq after+1 to until).
type head struct {
	author       string
	after, until uint64
}

func appendHead(dst []byte, h head) []byte {
	dst = append(dst, h.author...)
	dst = binary.BigEndian.AppendUint64(dst, h.after)
	return binary.BigEndian.AppendUint64(dst, h.until)
}

// parseHead decodes a HEAD payload; errors wrap message.ErrMalformed.
func parseHead(p []byte) (head, error) {
	if len(p) != headLen {
		return head{}, fmt.Errorf("%w: head of %d bytes", message.ErrMalformed, len(p))
	}
	h := head{
		author: string(p[:mesh.IDLen]),
		after:  binary.BigEndian.Uint64(p[mesh.IDLen:]),
		until:  binary.BigEndian.Uint64(p[mesh.IDLen+8:]),
	}
	if !mesh.ValidID(h.author) {
		return head{}, fmt.Errorf("%w: invalid author id %q", message.ErrMalformed, h.author)
	}
	if h.until <= h.after {
		return head{}, fmt.Errorf("%w: head of %s from %d until %d", message.ErrMalformed, mesh.ShortID(h.author), h.after, h.until)
	}
	return h, nil
}

// pageEntryLen is what one envelope takes in a PAGE payload.
func pageEntryLen(sealed []byte) int { return 4 + len(sealed) }

// appendPage appends a PAGE payload holding sealed to dst.
func appendPage(dst []byte, sealed [][]byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(sealed)))
	for _, b := range sealed {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
		dst = append(dst, b...)
	}
	return dst
}

// parsePage splits a PAGE payload into its sealed envelopes, which alias
// p: at least one, each at most message.MaxEnvelope bytes, nothing
// after. Errors wrap message.ErrMalformed or message.ErrTooLarge.
func parsePage(p []byte) ([][]byte, error) {
	if len(p) < pageHeaderLen {
		return nil, fmt.Errorf("%w: page of %d bytes", message.ErrMalformed, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[pageHeaderLen:]
	if n == 0 {
		return nil, fmt.Errorf("%w: empty page", message.ErrMalformed)
	}
	// Each entry takes at least its 4-byte length: bound n before
	// allocating for it.
	if n > len(p)/4 {
		return nil, fmt.Errorf("%w: page of %d envelopes in %d bytes", message.ErrMalformed, n, len(p))
	}
	out := make([][]byte, 0, n)
	for range n {
		if len(p) < 4 {
			return nil, fmt.Errorf("%w: page truncated", message.ErrMalformed)
		}
		l := binary.BigEndian.Uint32(p)
		p = p[4:]
		if l > message.MaxEnvelope {
			return nil, fmt.Errorf("%w: envelope of %d bytes in a page, limit %d", message.ErrTooLarge, l, message.MaxEnvelope)
		}
		if uint64(len(p)) < uint64(l) {
			return nil, fmt.Errorf("%w: page truncated", message.ErrMalformed)
		}
		out = append(out, p[:l:l])
		p = p[l:]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after a page's envelopes", message.ErrMalformed, len(p))
	}
	return out, nil
}

// Refusal codes of a REFUSE frame.
const (
	refuseDenied      = 1 // Source.Authorize refused
	refuseRateLimited = 2 // too many requests from this peer
	refuseUnavailable = 3 // the server could not read its store
)

// appendRefuse appends a REFUSE payload to dst.
func appendRefuse(dst []byte, code byte, reason string) []byte {
	return append(append(dst, code), clip(reason, MaxReason)...)
}

// parseRefuse decodes a REFUSE payload; errors wrap message.ErrMalformed.
func parseRefuse(p []byte) (byte, string, error) {
	if len(p) < 1 {
		return 0, "", fmt.Errorf("%w: empty refuse", message.ErrMalformed)
	}
	switch p[0] {
	case refuseDenied, refuseRateLimited, refuseUnavailable:
	default:
		return 0, "", fmt.Errorf("%w: unknown refusal code %d", message.ErrMalformed, p[0])
	}
	r, err := parseReason(p[1:])
	return p[0], r, err
}

// parseReason checks the reason of a CLOSE or REFUSE frame.
func parseReason(p []byte) (string, error) {
	if len(p) > MaxReason {
		return "", fmt.Errorf("%w: reason of %d bytes", message.ErrMalformed, len(p))
	}
	if !utf8.Valid(p) {
		return "", fmt.Errorf("%w: reason is not valid UTF-8", message.ErrMalformed)
	}
	return string(p), nil
}

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
