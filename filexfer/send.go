package filexfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/zeebo/blake3"
)

// SendConfig configures one attempt at sending a Source. Start from
// DefaultSendConfig.
type SendConfig struct {
	// ChunkShift sets the chunk size, 1<<ChunkShift bytes, between
	// MinChunkShift and MaxChunkShift. One transfer keeps one size.
	ChunkShift byte
	// ReplyTimeout bounds the wait for the recipient to accept or decline.
	ReplyTimeout time.Duration
	// IdleTimeout bounds every other wait on the recipient, and every
	// write.
	IdleTimeout time.Duration
	// MaxChanges is how often one file may change while it is sent before
	// the transfer gives up with ErrSourceChanged.
	MaxChanges int
	// Progress, when set, is called from the sending goroutine at most
	// every ProgressEvery, and once at the end; it must not block.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Log gets the transfer's warnings; nil discards them.
	Log *slog.Logger

	// corrupt, in tests, spoils a chunk's bytes after they were hashed.
	corrupt func(file, chunk uint32) bool
}

// DefaultSendConfig returns a configuration that works.
func DefaultSendConfig() SendConfig {
	return SendConfig{
		ChunkShift:    DefaultChunkShift,
		ReplyTimeout:  2 * time.Minute,
		IdleTimeout:   30 * time.Second,
		MaxChanges:    3,
		ProgressEvery: 100 * time.Millisecond,
	}
}

// Progress is where a transfer stands.
type Progress struct {
	// Done counts bytes verified or sent so far, including what the
	// recipient already held; Total is the offer's size.
	Done, Total int64
	// FilesDone counts files finished (sender: sent; recipient:
	// verified and in place); Files is the offer's file count.
	FilesDone, Files int
	// Current is the file being moved, CurrentSize its size.
	Current     string
	CurrentSize int64
	// Sent counts file bytes the sender wrote to this attempt's stream,
	// resent chunks included (0 at the recipient).
	Sent int64
}

// SendResult says what one attempt did.
type SendResult struct {
	// Sent counts file bytes sent in this attempt, resent chunks included.
	Sent int64
	// Held counts bytes the recipient already had from earlier attempts.
	Held int64
	// Resent counts bytes sent again because a chunk or file did not
	// verify.
	Resent int64
	// Changed lists files the recipient is starting over because their
	// source changed since an earlier attempt or while being sent.
	Changed []string
}

// sender is one attempt's state; only the sending goroutine touches it,
// except events, which the reading goroutine fills.
type sender struct {
	ctx      context.Context
	cfg      SendConfig
	src      *Source
	conn     net.Conn
	fw       *frameWriter
	shift    byte
	res      SendResult
	events   chan event    // from the reading goroutine
	readErr  error         // why the reading goroutine ended; set before readDone closes
	readDone chan struct{} // closed when the reading goroutine ends
	stopRead chan struct{} // closed when Send returns: the reading goroutine stops

	buf      []byte
	hasher   *blake3.Hasher
	changes  map[uint32]int
	prog     Progress
	lastProg time.Time
}

// event is one frame from the recipient during the data phase.
type event struct {
	t     frameType
	file  uint32
	chunk uint32
	err   error
}

// Send offers src over conn, a stream to the recipient, and sends what
// the recipient does not already hold. It returns nil only after the
// recipient has verified every file and put it in place. On failure the
// error says why, and errors.Is matches ErrDeclined, ErrRefused,
// ErrNoSpace, ErrWrite, ErrVerify, ErrSourceChanged or ErrProtocol; a cut
// stream gives the I/O error, and calling Send again with the same Source
// resumes. Send closes conn.
func Send(ctx context.Context, conn net.Conn, src *Source, cfg SendConfig) (SendResult, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	s := &sender{
		ctx: ctx, cfg: cfg, src: src, conn: conn, fw: newFrameWriter(conn), shift: cfg.ChunkShift,
		buf: make([]byte, dataHeaderLen+MaxData), hasher: blake3.New(), changes: map[uint32]int{},
	}
	if s.cfg.Log == nil {
		s.cfg.Log = slog.New(slog.DiscardHandler)
	}
	err := s.run(ctx)
	// A queued Source may wait long for its next attempt: it holds no
	// folder handles meanwhile.
	src.closeDirs()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrCancelled, ctx.Err())
	}
	if err != nil && s.events != nil && isNetErr(err) {
		// A write failed because the recipient hung up; it may have said
		// why first, and that is the better error.
		select {
		case <-s.readDone:
			var re *RemoteError
			if errors.As(s.readErr, &re) {
				err = re
			}
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		if tellPeer(err) {
			// Tell the recipient why, best effort: it may be gone.
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			s.fw.frame(frameError, appendCode(nil, codeOf(err), err.Error()))
			s.fw.flush()
		}
	}
	if s.readDone != nil {
		close(s.stopRead)
		conn.SetReadDeadline(time.Unix(1, 0))
		<-s.readDone
	}
	s.progress(true)
	return s.res, err
}

// isNetErr reports a broken or timed-out stream.
func isNetErr(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// tellPeer reports whether a failure is worth an ERROR frame: not one the
// peer reported, and not a broken stream, unless it is one of ours (a
// full disk's error is an errno, as a reset's is).
func tellPeer(err error) bool {
	var re *RemoteError
	if errors.As(err, &re) {
		return false
	}
	for _, e := range codeErrs {
		if errors.Is(err, e) {
			return true
		}
	}
	return !isNetErr(err)
}

func (s *sender) chunkCount(size int64) uint32 {
	return uint32((size + 1<<s.shift - 1) >> s.shift)
}

func (s *sender) run(ctx context.Context) error {
	if s.shift < MinChunkShift || s.shift > MaxChunkShift {
		return fmt.Errorf("chunk shift %d out of range", s.shift)
	}
	if err := s.src.restat(); err != nil {
		return err
	}
	total := s.src.Total()
	if total > MaxTotal {
		return fmt.Errorf("%w: %d bytes is more than one transfer carries", ErrRefused, total)
	}
	s.prog = Progress{Total: total, Files: s.src.Files()}
	if err := s.writeOffer(total); err != nil {
		return err
	}
	fr := newFrameReader(s.conn)
	haves, err := s.readReply(fr)
	if err != nil {
		return err
	}
	s.events = make(chan event, 256)
	s.readDone = make(chan struct{})
	s.stopRead = make(chan struct{})
	go s.readLoop(fr)

	for i, e := range s.src.Entries {
		if e.Dir {
			continue
		}
		idx := uint32(i)
		h := haves[idx]
		if h.Complete {
			s.res.Held += e.Size
			s.prog.Done += e.Size
			s.prog.FilesDone++
			continue
		}
		if h.Changed {
			s.res.Changed = append(s.res.Changed, e.Path)
		}
		if err := s.sendFile(idx, h.Ranges); err != nil {
			return err
		}
		if err := s.drain(false); err != nil {
			return err
		}
	}
	if err := s.fw.flush(); err != nil {
		return err
	}
	return s.drain(true)
}

func (s *sender) writeOffer(total int64) error {
	o := offer{Version: Version, ID: s.src.ID, ChunkShift: s.shift, Count: uint32(len(s.src.Entries)), Total: uint64(total)}
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if err := s.fw.frame(frameOffer, appendOffer(nil, o)); err != nil {
		return err
	}
	var p []byte
	for _, e := range s.src.Entries {
		if len(p)+entryFixedLen+len(e.Path) > maxListFrame {
			if err := s.fw.frame(frameEntries, p); err != nil {
				return err
			}
			p = p[:0]
		}
		p = appendEntry(p, e)
	}
	if len(p) > 0 {
		if err := s.fw.frame(frameEntries, p); err != nil {
			return err
		}
	}
	return s.fw.flush()
}

// readReply reads REPLY and the HAVE list that follows an acceptance.
func (s *sender) readReply(fr *frameReader) (map[uint32]have, error) {
	s.conn.SetReadDeadline(time.Now().Add(s.cfg.ReplyTimeout))
	t, p, err := fr.next()
	if err != nil {
		return nil, fmt.Errorf("waiting for the recipient's answer: %w", err)
	}
	if t == frameError || t == frameReply {
		code, reason, err := parseCode(p)
		if err != nil {
			return nil, err
		}
		if t == frameError || code != codeOK {
			return nil, &RemoteError{Code: code, Reason: reason}
		}
	} else {
		return nil, fmt.Errorf("%w: %v frame before REPLY", ErrProtocol, t)
	}
	haves := map[uint32]have{}
	chunks := func(i uint32) (uint32, bool) {
		if int(i) >= len(s.src.Entries) || s.src.Entries[i].Dir {
			return 0, false
		}
		return s.chunkCount(s.src.Entries[i].Size), true
	}
	for {
		s.conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		t, p, err := fr.next()
		if err != nil {
			return nil, err
		}
		switch t {
		case frameHave:
			hs, err := parseHaves(p, chunks)
			if err != nil {
				return nil, err
			}
			for _, h := range hs {
				haves[h.File] = h
			}
			if len(haves) > len(s.src.Entries) {
				return nil, fmt.Errorf("%w: HAVE list longer than the offer", ErrProtocol)
			}
		case frameHaveEnd:
			s.conn.SetReadDeadline(time.Time{})
			return haves, nil
		case frameError:
			code, reason, err := parseCode(p)
			if err != nil {
				return nil, err
			}
			return nil, &RemoteError{Code: code, Reason: reason}
		default:
			return nil, fmt.Errorf("%w: %v frame in the HAVE list", ErrProtocol, t)
		}
	}
}

// readLoop reads the recipient's frames while data flows, and hands them
// to the sending goroutine.
func (s *sender) readLoop(fr *frameReader) {
	defer close(s.readDone)
	for {
		t, p, err := fr.next()
		if err != nil {
			s.readErr = err
			return
		}
		ev := event{t: t}
		switch t {
		case frameNack, frameFileDone, frameRedo:
			ev.file, ev.chunk, err = parsePair(p, t)
			if err == nil && (int(ev.file) >= len(s.src.Entries) || s.src.Entries[ev.file].Dir) {
				err = fmt.Errorf("%w: %v for entry %d", ErrProtocol, t, ev.file)
			}
			if err == nil && t == frameNack && ev.chunk >= s.chunkCount(s.src.Entries[ev.file].Size) {
				err = fmt.Errorf("%w: NACK for chunk %d", ErrProtocol, ev.chunk)
			}
		case frameComplete:
			if len(p) != 0 {
				err = fmt.Errorf("%w: COMPLETE with payload", ErrProtocol)
			}
		case frameError:
			code, reason, perr := parseCode(p)
			if perr != nil {
				err = perr
			} else {
				err = &RemoteError{Code: code, Reason: reason}
			}
		default:
			err = fmt.Errorf("%w: %v frame from the recipient", ErrProtocol, t)
		}
		if err != nil {
			s.readErr = err
			return
		}
		select {
		case s.events <- ev:
		case <-s.stopRead:
			s.readErr = net.ErrClosed
			return
		}
		if t == frameComplete {
			s.readErr = io.EOF
			return
		}
	}
}

// drain handles the recipient's frames: without wait, those already
// queued; with wait, until COMPLETE.
func (s *sender) drain(wait bool) error {
	for {
		var ev event
		ok := true
		if wait {
			if err := s.fw.flush(); err != nil {
				return err
			}
			timer := time.NewTimer(s.cfg.IdleTimeout)
			select {
			case ev = <-s.events:
			case <-s.readDone:
				ev, ok = s.lastEvent()
			case <-timer.C:
				return fmt.Errorf("the recipient said nothing for %v", s.cfg.IdleTimeout)
			}
			timer.Stop()
		} else {
			select {
			case ev = <-s.events:
			case <-s.readDone:
				ev, ok = s.lastEvent()
			default:
				return nil
			}
		}
		if !ok {
			return s.readErr
		}
		switch ev.t {
		case frameComplete:
			return nil
		case frameFileDone:
			// Progress is counted as sent; nothing to do.
		case frameNack:
			s.cfg.Log.Warn("chunk did not verify at the recipient; sending it again",
				"file", s.src.Entries[ev.file].Path, "chunk", ev.chunk)
			if err := s.resendChunk(ev.file, ev.chunk); err != nil {
				return err
			}
		case frameRedo:
			s.cfg.Log.Warn("file did not verify at the recipient; sending it again", "file", s.src.Entries[ev.file].Path)
			if err := s.resendFile(ev.file); err != nil {
				return err
			}
		}
	}
}

// lastEvent takes an event still queued after the reading goroutine
// ended; ok is false when there is none.
func (s *sender) lastEvent() (event, bool) {
	select {
	case ev := <-s.events:
		return ev, true
	default:
		return event{}, false
	}
}

// sendFile sends every chunk of file idx outside held, then FILE_END. A
// file that changed while it was read is announced with CHANGED and sent
// again from the start, up to MaxChanges times.
func (s *sender) sendFile(idx uint32, held []span) error {
	for {
		changed, err := s.sendFileOnce(idx, held)
		if err != nil || !changed {
			return err
		}
		s.changes[idx]++
		e := s.src.Entries[idx]
		if s.changes[idx] > s.cfg.MaxChanges {
			return fmt.Errorf("%w: %s", ErrSourceChanged, e.Path)
		}
		s.cfg.Log.Warn("source changed while it was sent; starting it over", "file", e.Path)
		s.res.Changed = append(s.res.Changed, e.Path)
		if err := s.fw.frame(frameChanged, appendChanged(nil, idx, e)); err != nil {
			return err
		}
		held = nil
	}
}

func (s *sender) sendFileOnce(idx uint32, held []span) (changed bool, err error) {
	e := s.src.Entries[idx]
	s.prog.Current, s.prog.CurrentSize = e.Path, e.Size
	f, err := s.src.open(idx)
	if err != nil {
		return false, fmt.Errorf("source %s: %w", e.Path, err)
	}
	defer f.Close()
	if ch, err := s.changedSince(f, idx); err != nil || ch {
		return ch, err
	}
	n := s.chunkCount(e.Size)
	hashes := s.src.chunkHashes(idx, n, s.shift)
	known := make([]bool, n) // chunk hashes of this file we computed
	next := uint32(0)
	for _, r := range held {
		for c := next; c < r.Start; c++ {
			if ch, err := s.sendChunk(f, idx, c, &hashes[c], false); err != nil || ch {
				return ch, err
			}
			known[c] = true
		}
		for c := r.Start; c < r.End; c++ {
			s.prog.Done += s.chunkLen(e.Size, c)
			s.res.Held += s.chunkLen(e.Size, c)
		}
		next = r.End
	}
	for c := next; c < n; c++ {
		if ch, err := s.sendChunk(f, idx, c, &hashes[c], false); err != nil || ch {
			return ch, err
		}
		known[c] = true
	}
	// The file hash covers every chunk, the held ones too: those we hash
	// now if this Source has not seen them, which reads what the
	// recipient already has but sends nothing. It proves the whole file
	// the recipient ends with is the source as it is now.
	var zero [hashLen]byte
	for c := range n {
		if !known[c] && hashes[c] == zero {
			if ch, err := s.hashChunk(f, e.Size, c, &hashes[c]); err != nil || ch {
				return ch, err
			}
		}
	}
	if ch, err := s.changedSince(f, idx); err != nil || ch {
		return ch, err
	}
	root := fileHash(hashes)
	p := appendPair(make([]byte, 0, 8+hashLen), idx, n)
	if err := s.write(frameFileEnd, append(p, root[:]...)); err != nil {
		return false, err
	}
	s.prog.FilesDone++
	s.progress(false)
	return false, nil
}

// changedSince reports whether the open file is no longer the manifest's
// entry (another inode, size or time), and updates the entry if so.
func (s *sender) changedSince(f *os.File, idx uint32) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	e := s.src.Entries[idx]
	n := entryOf(e.Path, fi)
	if n.same(e) {
		return false, nil
	}
	s.src.Entries[idx] = n
	s.src.forget(idx)
	return true, nil
}

func (s *sender) chunkLen(size int64, c uint32) int64 {
	off := int64(c) << s.shift
	return min(int64(1)<<s.shift, size-off)
}

// sendChunk sends chunk c of file idx as DATA frames, hashing as it goes,
// then CHUNK with the hash. A short read means the file shrank: changed.
func (s *sender) sendChunk(f *os.File, idx, c uint32, sum *[hashLen]byte, resend bool) (changed bool, err error) {
	size := s.src.Entries[idx].Size
	off := int64(c) << s.shift
	left := s.chunkLen(size, c)
	s.hasher.Reset()
	for left > 0 {
		k := int(min(left, MaxData))
		buf := s.buf[:dataHeaderLen+k]
		appendPair(buf[:0], idx, c)
		if _, err := f.ReadAt(buf[dataHeaderLen:], off); err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return false, fmt.Errorf("read %s: %w", s.src.Entries[idx].Path, err)
		}
		s.hasher.Write(buf[dataHeaderLen:])
		if s.cfg.corrupt != nil && off == int64(c)<<s.shift && s.cfg.corrupt(idx, c) {
			buf[dataHeaderLen] ^= 0xff
		}
		if err := s.write(frameData, buf); err != nil {
			return false, err
		}
		off += int64(k)
		left -= int64(k)
		s.res.Sent += int64(k)
		if resend {
			s.res.Resent += int64(k)
		} else {
			s.prog.Done += int64(k)
		}
		s.progress(false)
	}
	s.hasher.Sum(sum[:0])
	p := appendPair(make([]byte, 0, 8+hashLen), idx, c)
	return false, s.write(frameChunk, append(p, sum[:]...))
}

// hashChunk hashes chunk c without sending it.
func (s *sender) hashChunk(f *os.File, size int64, c uint32, sum *[hashLen]byte) (changed bool, err error) {
	off := int64(c) << s.shift
	left := s.chunkLen(size, c)
	s.hasher.Reset()
	for left > 0 {
		k := int(min(left, MaxData))
		b := s.buf[:k]
		if _, err := f.ReadAt(b, off); err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return false, err
		}
		s.hasher.Write(b)
		off += int64(k)
		left -= int64(k)
	}
	s.hasher.Sum(sum[:0])
	return false, nil
}

func (s *sender) resendChunk(idx, c uint32) error {
	f, err := s.src.open(idx)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.src.Entries[idx].Path, err)
	}
	defer f.Close()
	if ch, err := s.changedSince(f, idx); err != nil {
		return err
	} else if ch {
		return s.restartFile(idx)
	}
	var sum [hashLen]byte
	ch, err := s.sendChunk(f, idx, c, &sum, true)
	if err != nil {
		return err
	}
	if ch {
		return s.restartFile(idx)
	}
	return nil
}

// resendFile sends all of file idx again after a REDO.
func (s *sender) resendFile(idx uint32) error {
	s.src.forget(idx)
	before := s.res.Sent
	done := s.prog.Done
	err := s.sendFile(idx, nil)
	s.res.Resent += s.res.Sent - before
	s.prog.Done = done
	return err
}

func (s *sender) restartFile(idx uint32) error {
	s.changes[idx]++
	e := s.src.Entries[idx]
	if s.changes[idx] > s.cfg.MaxChanges {
		return fmt.Errorf("%w: %s", ErrSourceChanged, e.Path)
	}
	s.res.Changed = append(s.res.Changed, e.Path)
	if err := s.write(frameChanged, appendChanged(nil, idx, e)); err != nil {
		return err
	}
	return s.resendFile(idx)
}

// write writes one frame, refreshing the write deadline; the context is
// checked after, since a refreshed deadline would undo the one its
// cancellation set.
func (s *sender) write(t frameType, p []byte) error {
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return s.fw.frame(t, p)
}

func (s *sender) progress(final bool) {
	if s.cfg.Progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(s.lastProg) < s.cfg.ProgressEvery {
		return
	}
	s.lastProg = now
	s.prog.Sent = s.res.Sent
	s.cfg.Progress(s.prog)
}

// fileHash is the file-level hash: BLAKE3 over the chunk hashes in order.
func fileHash(chunks [][hashLen]byte) [hashLen]byte {
	h := blake3.New()
	for i := range chunks {
		h.Write(chunks[i][:])
	}
	var out [hashLen]byte
	h.Sum(out[:0])
	return out
}
