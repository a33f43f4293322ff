package message

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lanchat/mesh"
)

// Queued is one sealed message of a batch for SendBatch.
type Queued struct {
	ID     string // the envelope's id
	Sealed []byte
}

// SendBatch sends sealed messages to one peer, in order, their frames
// written to the stream together, and waits for every acknowledgement.
// written is called once, as soon as all frames have been handed to the
// stream (true) or sending failed before that (false): a caller that starts the next
// batch only then keeps a queue's order on the wire while acknowledgements
// are awaited. errs[i] is the outcome of items[i], as SendEnvelope's.
//
// Writing many frames at once is what lets a backlog travel fast: the
// receiver finds them in the same TLS records and stores them in one
// transaction. Messages not acknowledged when the stream breaks are sent
// again one by one on a new stream, in order.
func (s *Service) SendBatch(ctx context.Context, to string, items []Queued, written func(sent bool)) []error {
	errs := make([]error, len(items))
	done := false
	wr := func(sent bool) {
		if !done {
			done = true
			written(sent)
		}
	}
	defer wr(false)
	if len(items) == 0 {
		return errs
	}
	if s.isClosed() {
		return fill(errs, ErrClosed)
	}
	if !mesh.ValidID(to) || to == s.self {
		return fill(errs, fmt.Errorf("send: %w: invalid recipient id %q", ErrMalformed, to))
	}
	if s.cfg.Dial == nil {
		return fill(errs, fmt.Errorf("send: %w: no Dial configured", ErrPeerUnreachable))
	}
	ids := make([][idLen]byte, len(items))
	var buf []byte
	for i, it := range items {
		id, ok := peekID(it.Sealed)
		if !ok || len(it.Sealed) > MaxEnvelope {
			return fill(errs, fmt.Errorf("send: %w: item %d is not a sealed envelope", ErrMalformed, i))
		}
		ids[i] = id
		buf = AppendFrame(buf, FrameMsg, it.Sealed)
	}
	c, err := s.outStream(ctx, to)
	if err != nil {
		return fill(errs, s.sendError(ctx, to, err))
	}
	chans := make([]chan Ack, len(items))
	c.mu.Lock()
	for i, id := range ids {
		chans[i] = make(chan Ack, 1)
		c.pending[id] = append(c.pending[id], chans[i])
	}
	c.mu.Unlock()
	defer func() {
		for i, id := range ids {
			c.unwait(id, chans[i])
		}
	}()
	werr := c.write(buf)
	wr(werr == nil)
	var broken bool
	if werr != nil {
		broken = true
	} else {
		t := time.NewTimer(s.cfg.AckTimeout)
		defer t.Stop()
	wait:
		for i := range items {
			select {
			case a := <-chans[i]:
				errs[i] = ackError(a.Status, a.Reason)
				continue
			case <-c.done:
			case <-ctx.Done():
				for j := i; j < len(items); j++ {
					errs[j] = s.sendError(ctx, to, ctx.Err())
				}
				return errs
			case <-t.C:
				c.close(fmt.Errorf("no acknowledgement within %v", s.cfg.AckTimeout))
			}
			// The stream ended: take what was acknowledged just before.
			for j := i; j < len(items); j++ {
				select {
				case a := <-chans[j]:
					errs[j] = ackError(a.Status, a.Reason)
				default:
					errs[j] = errBroken
				}
			}
			broken = true
			break wait
		}
	}
	if !broken {
		return errs
	}
	// Again on a new stream, in order, for what was not acknowledged.
	for i, it := range items {
		if werr == nil && !errors.Is(errs[i], errBroken) {
			continue
		}
		errs[i] = s.send(ctx, to, it.Sealed, &Envelope{ID: it.ID, To: to}, nil)
		if errs[i] != nil && !errors.Is(errs[i], ErrRejected) {
			for j := i + 1; j < len(items); j++ {
				if werr != nil || errors.Is(errs[j], errBroken) {
					errs[j] = errs[i]
				}
			}
			break
		}
	}
	return errs
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}
