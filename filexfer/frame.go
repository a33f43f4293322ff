package filexfer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"lanchat/message"
)

// ALPN is the protocol name of file-transfer streams; mesh routes incoming
// streams with it to Receiver.Serve.
const ALPN = "lanchat/file/1"

// Version is the protocol version an OFFER carries.
const Version = 1

var frameMagic = [2]byte{'L', 'F'}

// Frame and field limits; see doc.go.
const (
	frameHeaderLen = message.FrameHeaderLen
	// MaxData is the most file bytes one DATA frame carries.
	MaxData = 256 << 10
	// MaxFrame is the largest payload of any frame.
	MaxFrame = dataHeaderLen + MaxData
	// MaxName is the longest relative path, in bytes, of an entry.
	MaxName = 4096
	// MaxComponent is the longest single path element, in bytes.
	MaxComponent = 255
	// MaxDepth is the most path elements of an entry.
	MaxDepth = 64
	// MaxManifest bounds the bytes of all ENTRIES frames of one offer.
	MaxManifest = 16 << 20
	// MaxReason is the longest reason text of a REPLY or ERROR frame.
	MaxReason = 255
	// MinChunkShift and MaxChunkShift bound the chunk size an offer may
	// choose: 64 KiB to 16 MiB.
	MinChunkShift, MaxChunkShift = 16, 24
	// DefaultChunkShift is 1 MiB chunks: small enough that a cut loses
	// little, large enough that a chunk's record costs nothing.
	DefaultChunkShift = 20
	// MaxTotal is the largest total size an offer may claim (1 PiB), so
	// sums of sizes never overflow.
	MaxTotal = 1 << 50

	offerLen      = 1 + idLen + 1 + 4 + 8
	dataHeaderLen = 8  // file index, chunk index
	entryFixedLen = 31 // kind, mode, size, mtime, source id, name length
	hashLen       = 32 // BLAKE3-256
	idLen         = 16 // transfer id
	maxListFrame  = 64 << 10
)

type frameType byte

// Frame types: 0x0_ and 0x1_ go from sender to receiver, 0x2_ back, 0x30
// either way.
const (
	frameOffer    frameType = 0x01 // version, transfer id, chunk shift, count, total
	frameEntries  frameType = 0x02 // one or more manifest entries
	frameData     frameType = 0x10 // file index, chunk index, bytes
	frameChunk    frameType = 0x11 // file index, chunk index, chunk hash: ends a chunk
	frameFileEnd  frameType = 0x12 // file index, chunk count, file hash
	frameChanged  frameType = 0x13 // file index, new size, mtime, source id: starts over
	frameReply    frameType = 0x20 // accept, decline or refuse, with a reason
	frameHave     frameType = 0x21 // per file: what the receiver already holds
	frameHaveEnd  frameType = 0x22 // the end of the HAVE list
	frameNack     frameType = 0x23 // file index, chunk index: did not verify, send again
	frameFileDone frameType = 0x24 // file index: verified, durable, under its final name
	frameRedo     frameType = 0x25 // file index: the file hash did not match, send all again
	frameComplete frameType = 0x26 // every file is done
	frameError    frameType = 0x30 // code, reason: the transfer ends
)

func (t frameType) String() string {
	names := map[frameType]string{
		frameOffer: "OFFER", frameEntries: "ENTRIES", frameData: "DATA", frameChunk: "CHUNK",
		frameFileEnd: "FILE_END", frameChanged: "CHANGED", frameReply: "REPLY", frameHave: "HAVE",
		frameHaveEnd: "HAVE_END", frameNack: "NACK", frameFileDone: "FILE_DONE", frameRedo: "REDO",
		frameComplete: "COMPLETE", frameError: "ERROR",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("frameType(%#02x)", byte(t))
}

// maxPayload is the payload limit of each known type; ok false if unknown.
func (t frameType) maxPayload() (int, bool) {
	switch t {
	case frameOffer:
		return offerLen, true
	case frameEntries, frameHave:
		return maxListFrame, true
	case frameData:
		return MaxFrame, true
	case frameChunk:
		return 8 + hashLen, true
	case frameFileEnd:
		return 8 + hashLen, true
	case frameChanged:
		return 4 + 24, true
	case frameReply, frameError:
		return 2 + MaxReason, true
	case frameHaveEnd, frameComplete:
		return 0, true
	case frameNack, frameFileDone, frameRedo:
		return 8, true
	}
	return 0, false
}

// Errors. A transfer that fails tells the other side why in an ERROR
// frame; the code in it maps back onto the same sentinel there.
var (
	// ErrProtocol: the peer broke the protocol (bad frame, bad field).
	ErrProtocol = errors.New("file-transfer protocol violation")
	// ErrDeclined: the recipient said no.
	ErrDeclined = errors.New("offer declined")
	// ErrRefused: the recipient refused the offer by rule (too large,
	// too many files, not allowed).
	ErrRefused = errors.New("offer refused")
	// ErrNoSpace: the recipient's disk has no room for the transfer.
	ErrNoSpace = errors.New("not enough disk space")
	// ErrWrite: the recipient could not write (permission, I/O error).
	ErrWrite = errors.New("cannot write the received file")
	// ErrVerify: a file did not verify even after being sent again.
	ErrVerify = errors.New("file did not verify")
	// ErrSourceChanged: a source file kept changing while it was sent.
	ErrSourceChanged = errors.New("source file keeps changing")
	// ErrCancelled: the other side stopped the transfer.
	ErrCancelled = errors.New("transfer cancelled")
)

// Error codes of ERROR and REPLY frames.
const (
	codeOK        = 0
	codeDeclined  = 1
	codeRefused   = 2
	codeNoSpace   = 3
	codeWrite     = 4
	codeVerify    = 5
	codeChanged   = 6
	codeProtocol  = 7
	codeCancelled = 8
)

var codeErrs = map[byte]error{
	codeDeclined: ErrDeclined, codeRefused: ErrRefused, codeNoSpace: ErrNoSpace,
	codeWrite: ErrWrite, codeVerify: ErrVerify, codeChanged: ErrSourceChanged,
	codeProtocol: ErrProtocol, codeCancelled: ErrCancelled,
}

func codeOf(err error) byte {
	for c, e := range codeErrs {
		if errors.Is(err, e) {
			return c
		}
	}
	return codeCancelled
}

// RemoteError is a failure the other side reported.
type RemoteError struct {
	Code   byte
	Reason string
}

func (e *RemoteError) Error() string { return "peer: " + e.Reason }

// Is makes errors.Is(err, ErrNoSpace) and the like true for the
// matching code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeErrs[e.Code]
	return ok && s == target
}

// frameWriter writes frames through a buffer; the caller flushes before it
// waits on the peer.
type frameWriter struct {
	w   *bufio.Writer
	hdr [frameHeaderLen]byte
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, 64<<10)}
}

func (fw *frameWriter) header(t frameType, n int) {
	fw.hdr[0], fw.hdr[1], fw.hdr[2] = frameMagic[0], frameMagic[1], byte(t)
	binary.BigEndian.PutUint32(fw.hdr[3:], uint32(n))
}

// frame writes one frame whose payload is parts joined.
func (fw *frameWriter) frame(t frameType, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	fw.header(t, n)
	if _, err := fw.w.Write(fw.hdr[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := fw.w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

func (fw *frameWriter) flush() error { return fw.w.Flush() }

// frameReader reads frames into one reused buffer, unlike
// message.ReadFrameOf, which allocates each payload: at a gigabyte a
// second that would be four thousand 256 KiB allocations a second.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, 0, 4096)}
}

// next reads one frame; its payload is valid until the next call. The
// magic, the type and the length are checked before anything is read
// into the buffer, which grows to at most MaxFrame.
func (fr *frameReader) next() (frameType, []byte, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return 0, nil, err
	}
	return fr.payload(h)
}

func (fr *frameReader) payload(h [frameHeaderLen]byte) (frameType, []byte, error) {
	if h[0] != frameMagic[0] || h[1] != frameMagic[1] {
		return 0, nil, fmt.Errorf("%w: bad frame magic %#x", ErrProtocol, h[:2])
	}
	t := frameType(h[2])
	most, ok := t.maxPayload()
	if !ok {
		return 0, nil, fmt.Errorf("%w: unknown frame type %#02x", ErrProtocol, h[2])
	}
	n := binary.BigEndian.Uint32(h[3:])
	if uint64(n) > uint64(most) {
		return 0, nil, fmt.Errorf("%w: %v frame of %d bytes, limit %d", ErrProtocol, t, n, most)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("%v frame payload: %w", t, err)
	}
	return t, p, nil
}

// Payload codecs. Each parser is strict: a payload of the wrong length or
// with a field out of range is ErrProtocol.

// offer is the OFFER frame: what follows is count entries.
type offer struct {
	Version    byte
	ID         TransferID
	ChunkShift byte
	Count      uint32
	Total      uint64
}

func appendOffer(dst []byte, o offer) []byte {
	dst = append(dst, o.Version)
	dst = append(dst, o.ID[:]...)
	dst = append(dst, o.ChunkShift)
	dst = binary.BigEndian.AppendUint32(dst, o.Count)
	return binary.BigEndian.AppendUint64(dst, o.Total)
}

func parseOffer(p []byte) (offer, error) {
	var o offer
	if len(p) != offerLen {
		return o, fmt.Errorf("%w: offer of %d bytes", ErrProtocol, len(p))
	}
	o.Version = p[0]
	copy(o.ID[:], p[1:])
	o.ChunkShift = p[1+idLen]
	o.Count = binary.BigEndian.Uint32(p[2+idLen:])
	o.Total = binary.BigEndian.Uint64(p[6+idLen:])
	switch {
	case o.Version != Version:
		return o, fmt.Errorf("%w: protocol version %d, want %d", ErrProtocol, o.Version, Version)
	case o.ChunkShift < MinChunkShift || o.ChunkShift > MaxChunkShift:
		return o, fmt.Errorf("%w: chunk size 2^%d", ErrProtocol, o.ChunkShift)
	case o.Total > MaxTotal:
		return o, fmt.Errorf("%w: total size %d over %d", ErrProtocol, o.Total, uint64(MaxTotal))
	}
	return o, nil
}

// appendEntry appends one manifest entry as the wire has it.
func appendEntry(dst []byte, e Entry) []byte {
	kind := byte(0)
	if e.Dir {
		kind = 1
	}
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.Mode.Perm()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Size))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ModTime))
	dst = binary.BigEndian.AppendUint64(dst, e.SourceID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Path)))
	return append(dst, e.Path...)
}

// parseEntries decodes the entries of one ENTRIES frame, at most max of
// them. Names are checked for form here (length, UTF-8, relative); what
// they become on disk is SafePath's business.
func parseEntries(p []byte, max int) ([]Entry, error) {
	var out []Entry
	for len(p) > 0 {
		if len(out) >= max {
			return nil, fmt.Errorf("%w: more entries than the offer announced", ErrProtocol)
		}
		if len(p) < entryFixedLen {
			return nil, fmt.Errorf("%w: entry cut short", ErrProtocol)
		}
		var e Entry
		switch p[0] {
		case 0:
		case 1:
			e.Dir = true
		default:
			return nil, fmt.Errorf("%w: entry kind %d", ErrProtocol, p[0])
		}
		mode := binary.BigEndian.Uint32(p[1:])
		if mode&^0o777 != 0 {
			return nil, fmt.Errorf("%w: mode %#o", ErrProtocol, mode)
		}
		e.Mode = modeOf(mode)
		size := binary.BigEndian.Uint64(p[5:])
		if size > MaxTotal || (e.Dir && size != 0) {
			return nil, fmt.Errorf("%w: entry size %d", ErrProtocol, size)
		}
		e.Size = int64(size)
		e.ModTime = int64(binary.BigEndian.Uint64(p[13:]))
		e.SourceID = binary.BigEndian.Uint64(p[21:])
		n := int(binary.BigEndian.Uint16(p[29:]))
		if n == 0 || n > MaxName || len(p) < entryFixedLen+n {
			return nil, fmt.Errorf("%w: entry name of %d bytes", ErrProtocol, n)
		}
		name := p[entryFixedLen : entryFixedLen+n]
		if !utf8.Valid(name) {
			return nil, fmt.Errorf("%w: entry name is not UTF-8", ErrProtocol)
		}
		e.Path = string(name)
		p = p[entryFixedLen+n:]
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty ENTRIES frame", ErrProtocol)
	}
	return out, nil
}

// have is one file's line in the HAVE list.
type have struct {
	File     uint32
	Complete bool   // the file is done; nothing is sent
	Changed  bool   // the source changed since the first offer: starting over
	Ranges   []span // chunk ranges already verified, ascending, disjoint
}

// span is a half-open range of chunk indices.
type span struct{ Start, End uint32 }

const (
	haveComplete = 1 << 0
	haveChanged  = 1 << 1
	haveFixedLen = 4 + 1 + 2
)

func appendHave(dst []byte, h have) []byte {
	dst = binary.BigEndian.AppendUint32(dst, h.File)
	var f byte
	if h.Complete {
		f |= haveComplete
	}
	if h.Changed {
		f |= haveChanged
	}
	dst = append(dst, f)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.Ranges)))
	for _, r := range h.Ranges {
		dst = binary.BigEndian.AppendUint32(dst, r.Start)
		dst = binary.BigEndian.AppendUint32(dst, r.End)
	}
	return dst
}

// parseHaves decodes one HAVE frame. chunks gives a file's chunk count,
// and ok false for an index that is not a file of the offer.
func parseHaves(p []byte, chunks func(uint32) (uint32, bool)) ([]have, error) {
	var out []have
	for len(p) > 0 {
		if len(p) < haveFixedLen {
			return nil, fmt.Errorf("%w: have cut short", ErrProtocol)
		}
		h := have{File: binary.BigEndian.Uint32(p)}
		f := p[4]
		if f&^(haveComplete|haveChanged) != 0 {
			return nil, fmt.Errorf("%w: have flags %#x", ErrProtocol, f)
		}
		h.Complete, h.Changed = f&haveComplete != 0, f&haveChanged != 0
		n := int(binary.BigEndian.Uint16(p[5:]))
		p = p[haveFixedLen:]
		if len(p) < 8*n {
			return nil, fmt.Errorf("%w: have ranges cut short", ErrProtocol)
		}
		nc, ok := chunks(h.File)
		if !ok {
			return nil, fmt.Errorf("%w: have for file %d, not in the offer", ErrProtocol, h.File)
		}
		if n > 0 {
			h.Ranges = make([]span, n)
		}
		last := uint32(0)
		for i := range n {
			r := span{binary.BigEndian.Uint32(p[8*i:]), binary.BigEndian.Uint32(p[8*i+4:])}
			if r.Start >= r.End || r.End > nc || (i > 0 && r.Start <= last) {
				return nil, fmt.Errorf("%w: have range [%d,%d) of a file of %d chunks", ErrProtocol, r.Start, r.End, nc)
			}
			last = r.End
			h.Ranges[i] = r
		}
		p = p[8*n:]
		out = append(out, h)
	}
	return out, nil
}

func appendCode(dst []byte, code byte, reason string) []byte {
	r := clip(reason, MaxReason)
	dst = append(dst, code, byte(len(r)))
	return append(dst, r...)
}

func parseCode(p []byte) (byte, string, error) {
	if len(p) < 2 || len(p) != 2+int(p[1]) {
		return 0, "", fmt.Errorf("%w: reason frame of %d bytes", ErrProtocol, len(p))
	}
	r := p[2:]
	if !utf8.Valid(r) {
		return 0, "", fmt.Errorf("%w: reason is not UTF-8", ErrProtocol)
	}
	if _, ok := codeErrs[p[0]]; !ok && p[0] != codeOK {
		return 0, "", fmt.Errorf("%w: unknown code %d", ErrProtocol, p[0])
	}
	return p[0], string(r), nil
}

func appendPair(dst []byte, a, b uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, a)
	return binary.BigEndian.AppendUint32(dst, b)
}

func parsePair(p []byte, t frameType) (uint32, uint32, error) {
	if len(p) != 8 {
		return 0, 0, fmt.Errorf("%w: %v of %d bytes", ErrProtocol, t, len(p))
	}
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), nil
}

// parseHashed decodes CHUNK and FILE_END: two numbers and a hash.
func parseHashed(p []byte, t frameType) (uint32, uint32, [hashLen]byte, error) {
	var h [hashLen]byte
	if len(p) != 8+hashLen {
		return 0, 0, h, fmt.Errorf("%w: %v of %d bytes", ErrProtocol, t, len(p))
	}
	copy(h[:], p[8:])
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), h, nil
}

func appendChanged(dst []byte, idx uint32, e Entry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, idx)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Size))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ModTime))
	return binary.BigEndian.AppendUint64(dst, e.SourceID)
}

func parseChanged(p []byte) (idx uint32, size, mtime int64, src uint64, err error) {
	if len(p) != 28 {
		return 0, 0, 0, 0, fmt.Errorf("%w: CHANGED of %d bytes", ErrProtocol, len(p))
	}
	u := binary.BigEndian.Uint64(p[4:])
	if u > MaxTotal {
		return 0, 0, 0, 0, fmt.Errorf("%w: changed size %d", ErrProtocol, u)
	}
	return binary.BigEndian.Uint32(p), int64(u), int64(binary.BigEndian.Uint64(p[12:])), binary.BigEndian.Uint64(p[20:]), nil
}

// clip makes s valid UTF-8 of at most n bytes, cut at a rune boundary.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
