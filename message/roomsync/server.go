package roomsync

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"

	"lanchat/mesh"
	"lanchat/message"
)

// errPeerClosed: the peer sent a CLOSE frame.
var errPeerClosed = errors.New("peer closed the stream")

// flushAt is how many bytes of small frames the server gathers before
// writing them, so that HEADs and small pages share TLS records.
const flushAt = 64 << 10

// HandleStream serves the requests of one incoming stream, one after the
// other, until the stream ends or breaks the protocol, and then closes
// it (with a CLOSE frame saying why, when there is something to say).
// mesh calls it in a goroutine of its own for every stream with ALPN.
func (s *Syncer) HandleStream(st message.Stream) {
	if !s.begin() {
		st.Close()
		return
	}
	defer s.wg.Done()
	if !s.register(st) {
		st.Close()
		return
	}
	defer s.unregister(st)
	peer := st.PeerID()
	log := s.log.With("peer", mesh.ShortID(peer), "dir", "in")
	c := newConn(s.ctx, st, &s.cfg)
	err := s.serve(c, peer, log)
	switch {
	case s.ctx.Err() != nil:
		c.closeWith("shutting down")
	case errors.Is(err, errPeerClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, errWrite):
		// The peer is gone or has said why: nothing to tell it.
		c.closeWith("")
	case errors.Is(err, errIdle):
		c.closeWith("idle")
	default:
		c.closeWith(err.Error())
	}
	if errors.Is(err, message.ErrMalformed) || errors.Is(err, message.ErrTooLarge) {
		log.Warn("sync stream closed: protocol violation", "reason", err)
	} else {
		log.Debug("sync stream closed", "reason", err)
	}
}

// serve answers requests until the stream ends; it returns why.
func (s *Syncer) serve(c *conn, peer string, log *slog.Logger) error {
	for {
		f, err := c.read(s.cfg.IdleTimeout)
		if err != nil {
			return err
		}
		switch f.Type {
		case FramePull:
			req, err := parsePull(f.Payload, s.cfg.MaxAuthors)
			if err != nil {
				return err
			}
			err = s.limited(c, peer, log, func() error { return s.servePull(c, peer, req, log) })
			if err != nil {
				return err
			}
		case FrameIndex:
			if err := s.limited(c, peer, log, func() error { return s.serveIndex(c, log) }); err != nil {
				return err
			}
		case FrameClose:
			r, _ := parseReason(f.Payload)
			return fmt.Errorf("%w: %q", errPeerClosed, r)
		default:
			return fmt.Errorf("%w: unexpected %v frame from a client", message.ErrMalformed, f.Type)
		}
	}
}

// limited runs answer unless peer asks too often or has too many
// requests being answered; then it refuses the request (code 2).
func (s *Syncer) limited(c *conn, peer string, log *slog.Logger, answer func() error) error {
	reason := ""
	switch {
	case !s.limit.allow(peer):
		reason = "rate limited: slow down"
	case !s.enter(peer):
		reason = "rate limited: too many requests at once"
	}
	if reason != "" {
		log.Debug("sync request refused", "reason", reason)
		return c.write(refuseFrame(refuseRateLimited, reason))
	}
	defer s.leave(peer)
	return answer()
}

func refuseFrame(code byte, reason string) []byte {
	return appendFrame(nil, FrameRefuse, appendRefuse(nil, code, reason))
}

// servePull answers one PULL: a HEAD and PAGEs for every author of whom
// the server holds more than the client, then DONE. A Source error ends
// the answer with a REFUSE; only a failed write ends the stream.
func (s *Syncer) servePull(c *conn, peer string, req pull, log *slog.Logger) error {
	src := s.cfg.Source
	if src == nil {
		return c.write(refuseFrame(refuseUnavailable, "not serving rooms"))
	}
	if err := src.Authorize(peer, req.room); err != nil {
		log.Debug("sync request refused", "room", req.room, "reason", err)
		return c.write(refuseFrame(refuseDenied, err.Error()))
	}
	heads, err := src.Heads(s.ctx, req.room)
	if err != nil {
		log.Warn("sync: reading heads", "room", req.room, "err", err)
		return c.write(refuseFrame(refuseUnavailable, "cannot read the room"))
	}
	var authors, behind []string
	for a, n := range heads {
		if n > req.have[a] && mesh.ValidID(a) {
			authors = append(authors, a)
		}
	}
	for a, n := range req.have {
		if n > heads[a] {
			behind = append(behind, a)
		}
	}
	slices.Sort(authors)
	var buf []byte
	// The settings matter only to the skips of events that follow: a
	// client that misses nothing (the common pull) is not sent them.
	if ss, ok := src.(StateSource); ok && len(authors) > 0 {
		state, err := ss.State(s.ctx, req.room)
		if err != nil {
			log.Warn("sync: reading the room's state", "room", req.room, "err", err)
			return c.write(refuseFrame(refuseUnavailable, "cannot read the room"))
		}
		if len(state) > MaxState {
			state = state[len(state)-MaxState:] // the latest
		}
		if size := pageHeaderLen; len(state) > 0 {
			for _, b := range state {
				size += pageEntryLen(b)
			}
			if size <= MaxPage {
				buf = appendFrame(buf, FrameState, appendPage(nil, state))
			}
		}
	}
	flush := func(force bool) error {
		if len(buf) == 0 || !force && len(buf) < flushAt {
			return nil
		}
		err := c.write(buf)
		buf = buf[:0]
		return err
	}
	events := 0
	for _, a := range authors {
		after, until := req.have[a], heads[a]
		first := true
		for after < until {
			limit := int(min(uint64(s.cfg.PageEvents), until-after))
			page, err := src.Page(s.ctx, req.room, a, after, limit)
			if err == nil && len(page) == 0 {
				err = fmt.Errorf("no events of %s after %d, heads say %d", mesh.ShortID(a), after, until)
			}
			if err != nil && first {
				// Nothing of this author is announced yet: leave it
				// out rather than end the answer, so that one author's
				// events the store cannot serve (whatever put it in
				// that state) do not stop the room's catch-up for
				// every author after it.
				log.Warn("sync: reading a page; leaving the author out", "room", req.room, "err", err)
				break
			}
			if err != nil {
				log.Warn("sync: reading a page", "room", req.room, "err", err)
				buf = append(buf, refuseFrame(refuseUnavailable, "cannot read the room")...)
				return flush(true)
			}
			if first {
				buf = appendFrame(buf, FrameHead, appendHead(nil, head{author: a, after: after, until: until}))
				first = false
				// Pruned: the page starts at the author's witness.
				if seq, ok := message.PeekSeq(page[0]); ok && seq > after+1 && seq <= until {
					after = seq - 1
				}
			} else if seq, ok := message.PeekSeq(page[0]); !ok || seq != after+1 {
				// A prune while we answered took what we announced: end
				// the answer rather than send a page the client must
				// take for a violation; what it has is valid.
				log.Info("sync: the author's events changed while served", "room", req.room, "after", after, "next", seq)
				buf = append(buf, refuseFrame(refuseUnavailable, "the room was pruned meanwhile; ask again")...)
				return flush(true)
			}
			if len(page) > limit {
				page = page[:limit]
			}
			for len(page) > 0 {
				n, size := 0, pageHeaderLen
				for n < len(page) && n < maxPageCount && (n == 0 || size+pageEntryLen(page[n]) <= s.cfg.PageBytes) {
					size += pageEntryLen(page[n])
					n++
				}
				buf = appendFrame(buf, FramePage, appendPage(nil, page[:n]))
				if err := flush(false); err != nil {
					return err
				}
				page = page[n:]
				after += uint64(n)
				events += n
			}
		}
	}
	// Ahead before DONE: when the client's Pull returns, the server's
	// Source knows what to pull back.
	if len(behind) > 0 {
		slices.Sort(behind)
		src.Ahead(peer, req.room, behind)
	}
	buf = appendFrame(buf, FrameDone, nil)
	if err := flush(true); err != nil {
		return err
	}
	log.Debug("sync request served", "room", req.room, "authors", len(authors), "events", events, "behind", len(behind))
	return nil
}

// serveIndex answers one INDEX: the Source's memberships in PAGEs, then
// DONE.
func (s *Syncer) serveIndex(c *conn, log *slog.Logger) error {
	src := s.cfg.Source
	if src == nil {
		return c.write(refuseFrame(refuseUnavailable, "not serving rooms"))
	}
	ms, err := src.Memberships(s.ctx)
	if err != nil {
		log.Warn("sync: reading memberships", "err", err)
		return c.write(refuseFrame(refuseUnavailable, "cannot read memberships"))
	}
	var buf []byte
	for len(ms) > 0 {
		n, size := 0, pageHeaderLen
		for n < len(ms) && n < maxPageCount && (n == 0 || size+pageEntryLen(ms[n]) <= s.cfg.PageBytes) {
			size += pageEntryLen(ms[n])
			n++
		}
		buf = appendFrame(buf, FramePage, appendPage(nil, ms[:n]))
		ms = ms[n:]
		if len(buf) >= flushAt {
			if err := c.write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return c.write(appendFrame(buf, FrameDone, nil))
}
