package message

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"lanchat/mesh"
)

// Reasons a stream closes, beside errors from the wire.
var (
	errBroken     = errors.New("stream broken")          // the outgoing stream ended before the ack
	errIdle       = errors.New("idle")                   // nothing travelled for IdleTimeout
	errPeerClosed = errors.New("peer closed the stream") // a CLOSE frame arrived
	errWrite      = errors.New("write failed")           // the stream cannot be written
)

// closeWriteTimeout bounds the courtesy CLOSE frame written when we close a
// stream, so a peer that does not read cannot delay Close.
const closeWriteTimeout = 100 * time.Millisecond

// outStream is our stream to one peer, shared by every send to it. Its
// goroutine dials and then reads acknowledgements until the stream ends.
type outStream struct {
	s    *Service
	peer string
	log  *slog.Logger

	ready   chan struct{} // closed when the dial has ended, with st or dialErr set
	dialErr error         // why the dial failed; written before ready is closed

	wmu sync.Mutex // serialises writes to st

	qmu     sync.Mutex // guards the fields below
	queued  []byte     // frames waiting for the writer in progress
	spare   []byte     // the last written buffer, reused
	writing bool       // a caller is writing queued frames

	closeOnce sync.Once
	done      chan struct{} // closed when the stream has been closed, after err is set
	err       error         // why it closed

	mu      sync.Mutex                 // guards the fields below
	st      Stream                     // nil until dialled
	br      *bufio.Reader              // reads st; used only by the reading goroutine
	closed  bool                       // close has begun; a late dial result is discarded
	pending map[[idLen]byte][]chan Ack // sends waiting for an ack, by message id
}

func newOutStream(s *Service, peer string) *outStream {
	return &outStream{
		s:       s,
		peer:    peer,
		log:     s.log.With("peer", mesh.ShortID(peer), "dir", "out"),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		pending: make(map[[idLen]byte][]chan Ack),
	}
}

// dial opens the stream, then reads it until it ends. It runs in its own
// goroutine, counted in s.wg.
func (c *outStream) dial() {
	defer c.s.wg.Done()
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.DialTimeout)
	st, err := c.s.cfg.Dial(ctx, c.peer, ALPN)
	cancel()
	if err == nil && st.PeerID() != c.peer {
		st.Close()
		err = fmt.Errorf("reached %s instead", mesh.ShortID(st.PeerID()))
	}
	if err != nil {
		c.dialErr = fmt.Errorf("%w: dial %s: %w", ErrPeerUnreachable, mesh.ShortID(c.peer), err)
		if c.s.ctx.Err() != nil {
			c.dialErr = ErrClosed
		}
		c.log.Debug("dial failed", "err", err)
		c.close(c.dialErr)
		close(c.ready)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		st.Close()
		c.dialErr = ErrClosed
		close(c.ready)
		return
	}
	c.st = st
	c.br = bufio.NewReader(st)
	c.mu.Unlock()
	c.log.Debug("stream open")
	close(c.ready)
	c.readLoop()
}

// readLoop reads acknowledgements and hands each to the sends waiting for
// it, until the stream ends.
func (c *outStream) readLoop() {
	for {
		f, err := readNext(c.st, c.br, c.s.cfg.IdleTimeout, c.s.cfg.FrameTimeout, c.busy)
		if err != nil {
			c.close(err)
			return
		}
		switch f.Type {
		case FrameAck:
			a, err := ParseAck(f.Payload)
			if err != nil {
				c.close(err)
				return
			}
			c.resolve(a)
		case FrameClose:
			r, _ := parseReason(f.Payload)
			c.close(fmt.Errorf("%w: %q", errPeerClosed, r))
			return
		default:
			c.close(fmt.Errorf("%w: unexpected %v frame on an outgoing stream", ErrMalformed, f.Type))
			return
		}
	}
}

// busy reports whether sends are waiting, which keeps an idle stream open.
func (c *outStream) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

// resolve hands a to the sends waiting for its message id.
func (c *outStream) resolve(a Ack) {
	c.mu.Lock()
	waiters := c.pending[a.ID]
	delete(c.pending, a.ID)
	c.mu.Unlock()
	if len(waiters) == 0 {
		c.log.Debug("ack for no waiting send", "msg", fmt.Sprintf("%x", a.ID), "status", a.Status)
	}
	for _, ch := range waiters {
		ch <- a // buffered, one ack per waiter
	}
}

// roundTrip writes frame (a MSG with message id id) and waits for its
// acknowledgement. An error wrapping errBroken means the stream ended
// first and the message should be sent on a new one.
func (c *outStream) roundTrip(ctx context.Context, id [idLen]byte, frame []byte, written func(bool)) (Ack, error) {
	ch := make(chan Ack, 1)
	c.mu.Lock()
	c.pending[id] = append(c.pending[id], ch)
	c.mu.Unlock()
	defer c.unwait(id, ch)

	err := c.write(frame)
	written(err == nil)
	if err != nil {
		return Ack{}, err
	}
	t := time.NewTimer(c.s.cfg.AckTimeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a, nil
	case <-c.done:
		select {
		case a := <-ch: // the ack arrived just before the end
			return a, nil
		default:
		}
		return Ack{}, fmt.Errorf("%w: %w", errBroken, c.err)
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	case <-t.C:
		err := fmt.Errorf("no acknowledgement within %v", c.s.cfg.AckTimeout)
		c.close(err) // presumed half-open; the next send dials afresh
		return Ack{}, fmt.Errorf("%w: %w", ErrPeerUnreachable, err)
	}
}

// unwait removes ch from the waiters for id, if still there.
func (c *outStream) unwait(id [idLen]byte, ch chan Ack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.pending[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.pending, id)
	} else {
		c.pending[id] = ws
	}
}

// write queues one whole frame for the stream, in call order. Frames
// queued while another caller is writing go out together in that caller's
// next write: the receiver then finds them in one TLS record and takes
// them as one batch (one signature check pass, one store transaction)
// instead of one at a time. A failed write closes the stream; every
// message queued on it then fails over to a new stream.
func (c *outStream) write(frame []byte) error {
	c.qmu.Lock()
	select {
	case <-c.done:
		c.qmu.Unlock()
		return fmt.Errorf("%w: %w", errBroken, c.err)
	default:
	}
	c.queued = append(c.queued, frame...)
	if c.writing {
		c.qmu.Unlock()
		return nil // the writer in progress takes it along
	}
	c.writing = true
	for len(c.queued) > 0 {
		buf := c.queued
		c.queued = c.spare[:0]
		c.qmu.Unlock()
		err := c.writeNow(buf)
		c.qmu.Lock()
		c.spare = buf
		if err != nil {
			c.writing = false
			c.queued = nil
			c.qmu.Unlock()
			return err
		}
	}
	c.writing = false
	c.qmu.Unlock()
	return nil
}

func (c *outStream) writeNow(buf []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.done:
		return fmt.Errorf("%w: %w", errBroken, c.err)
	default:
	}
	c.st.SetWriteDeadline(time.Now().Add(c.s.cfg.AckTimeout))
	if _, err := c.st.Write(buf); err != nil {
		err = fmt.Errorf("%w: %w", errWrite, err)
		c.close(err)
		return fmt.Errorf("%w: %w", errBroken, err)
	}
	return nil
}

// close closes the stream once, for reason: it stops being the peer's
// stream, tells the peer why (best effort), and wakes every waiting send.
func (c *outStream) close(reason error) {
	c.closeOnce.Do(func() {
		c.err = reason
		c.mu.Lock()
		c.closed = true
		st := c.st
		c.mu.Unlock()
		c.s.forget(c)
		if st != nil {
			sendClose(st, &c.wmu, reason)
			st.Close()
			logClose(c.log, reason)
		}
		close(c.done)
	})
}

// inStream is an incoming stream from one peer, served by HandleStream.
type inStream struct {
	s    *Service
	st   Stream
	peer string
	br   *bufio.Reader
	log  *slog.Logger

	wmu       sync.Mutex // serialises writes to st
	closeOnce sync.Once
}

func newInStream(s *Service, st Stream) *inStream {
	return &inStream{
		s:    s,
		st:   st,
		peer: st.PeerID(),
		br:   bufio.NewReader(st),
		log:  s.log.With("peer", mesh.ShortID(st.PeerID()), "dir", "in"),
	}
}

// MaxRecvBatch bounds how many messages a receiving stream takes in one
// go (see Config.DeliverBatch).
const MaxRecvBatch = 256

// serve reads and answers frames until the stream ends, and says why.
// Frames that have already arrived are taken together: their envelopes
// are checked in parallel, delivered as one batch, and acknowledged in one
// write. Acknowledgements keep the order of the messages.
func (in *inStream) serve() error {
	for {
		f, err := readNext(in.st, in.br, in.s.cfg.IdleTimeout, in.s.cfg.FrameTimeout, nil)
		if err != nil {
			return err
		}
		var batch [][]byte
		var end error
	collect:
		for {
			switch f.Type {
			case FrameMsg:
				batch = append(batch, f.Payload)
			case FrameClose:
				r, _ := parseReason(f.Payload)
				end = fmt.Errorf("%w: %q", errPeerClosed, r)
				break collect
			default:
				end = fmt.Errorf("%w: unexpected %v frame on an incoming stream", ErrMalformed, f.Type)
				break collect
			}
			if len(batch) >= MaxRecvBatch || in.br.Buffered() == 0 {
				break
			}
			if f, end = readNext(in.st, in.br, in.s.cfg.IdleTimeout, in.s.cfg.FrameTimeout, nil); end != nil {
				break
			}
		}
		if len(batch) > 0 {
			acks, bad := in.receive(batch)
			if len(acks) > 0 {
				out := make([]byte, 0, len(acks)*(FrameHeaderLen+ackFixedLen))
				for _, a := range acks {
					out = appendAckFrame(out, a)
				}
				if err := in.write(out); err != nil {
					return err
				}
			}
			if bad != nil {
				return bad
			}
		}
		if end != nil {
			return end
		}
	}
}

// receive checks sealed envelopes and hands those that pass to
// acceptBatch. A refusal becomes a rejecting ack; only bytes without a
// message id to answer end the stream: receive then returns the acks of
// the messages before them and the error to end the stream with.
func (in *inStream) receive(payloads [][]byte) ([]Ack, error) {
	acks := make([]Ack, len(payloads))
	envs, errs := in.s.verify.OpenBatch(payloads)
	var good []*Envelope
	var goodIdx []int
	for i, payload := range payloads {
		id, ok := peekID(payload)
		if !ok {
			// Bytes with no id to answer: answer what came before, then
			// end the stream.
			if len(good) > 0 {
				accepted := in.s.acceptBatch(in.s.ctx, good)
				for j, k := range goodIdx {
					acks[k] = accepted[j]
				}
			}
			return acks[:i], errs[i]
		}
		if errs[i] != nil {
			in.log.Warn("refused an envelope", "msg", fmt.Sprintf("%x", id), "err", errs[i])
			acks[i] = Ack{ID: id, Status: AckRejected, Reason: clipReason(errs[i].Error())}
			continue
		}
		env := envs[i]
		var reason string
		switch {
		case env.Author != in.peer:
			// A relay is a later feature: on a direct stream the writer sends.
			reason = fmt.Sprintf("author %s is not the sending peer", mesh.ShortID(env.Author))
		case env.Conversation == "" && env.To != in.s.self:
			reason = fmt.Sprintf("addressed to %s, not to this peer", mesh.ShortID(env.To))
		}
		// A room event (version 2) has no recipient: whoever its author
		// sends it to may take it, and DeliverBatch decides whether this
		// node is a member of the room.
		if reason != "" {
			in.log.Warn("refused a message", "msg", env.ID, "reason", reason)
			acks[i] = Ack{ID: id, Status: AckRejected, Reason: reason}
			continue
		}
		good = append(good, env)
		goodIdx = append(goodIdx, i)
	}
	if len(good) > 0 {
		accepted := in.s.acceptBatch(in.s.ctx, good)
		for j, k := range goodIdx {
			acks[k] = accepted[j]
		}
	}
	return acks, nil
}

func (in *inStream) write(frame []byte) error {
	in.wmu.Lock()
	defer in.wmu.Unlock()
	in.st.SetWriteDeadline(time.Now().Add(in.s.cfg.FrameTimeout))
	if _, err := in.st.Write(frame); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// close closes the stream once, telling the peer why (best effort).
func (in *inStream) close(reason error) {
	in.closeOnce.Do(func() {
		sendClose(in.st, &in.wmu, reason)
		in.st.Close()
		logClose(in.log, reason)
	})
}

// readNext reads the next frame from br (which reads conn). The first byte
// may take up to idle to come; while keep reports true, waiting goes on.
// Once it has come, the whole frame must arrive within frameTimeout.
func readNext(conn net.Conn, br *bufio.Reader, idle, frameTimeout time.Duration, keep func() bool) (Frame, error) {
	for {
		conn.SetReadDeadline(time.Now().Add(idle))
		_, err := br.Peek(1)
		if err == nil {
			break
		}
		if !isTimeout(err) {
			return Frame{}, err
		}
		if keep == nil || !keep() {
			return Frame{}, errIdle
		}
	}
	conn.SetReadDeadline(time.Now().Add(frameTimeout))
	f, err := ReadFrame(br)
	if isTimeout(err) {
		return f, fmt.Errorf("frame not complete within %v: %w", frameTimeout, err)
	}
	return f, err
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sendClose writes a CLOSE frame with reason, unless the stream already
// failed or another write holds it: it is a courtesy, never a wait.
func sendClose(st net.Conn, wmu *sync.Mutex, reason error) {
	if quietClose(reason) || !wmu.TryLock() {
		return
	}
	defer wmu.Unlock()
	st.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	st.Write(AppendFrame(nil, FrameClose, []byte(clipReason(closeReason(reason)))))
}

// closeReason is the text a CLOSE frame carries for reason.
func closeReason(reason error) string {
	switch {
	case errors.Is(reason, ErrClosed):
		return "shutting down"
	case errors.Is(reason, errIdle):
		return "idle"
	}
	return reason.Error()
}

// quietClose reports whether reason means the stream is already unusable
// or the peer ended it, so that writing a CLOSE frame is pointless.
func quietClose(reason error) bool {
	return reason == nil || errors.Is(reason, errPeerClosed) || errors.Is(reason, io.EOF) ||
		errors.Is(reason, io.ErrUnexpectedEOF) || errors.Is(reason, net.ErrClosed) ||
		errors.Is(reason, errWrite)
}

// logClose logs why a stream closed: protocol violations as warnings, the
// ordinary ends of a stream at debug level.
func logClose(log *slog.Logger, reason error) {
	if errors.Is(reason, ErrMalformed) || errors.Is(reason, ErrTooLarge) {
		log.Warn("stream closed: protocol violation", "reason", reason)
		return
	}
	log.Debug("stream closed", "reason", reason)
}
