package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"lanchat/mesh"
)

// The control socket: a Unix socket in the data directory (0600, in a 0700
// directory) through which one-shot commands and scripts reach a running
// node. One JSON request per connection, one JSON reply; the "events"
// request instead streams events, one JSON object per line, until the
// client hangs up.

// Request is what a client sends on the control socket.
type Request struct {
	Op    string `json:"op"` // id, peers, send, status, events, history, outbox, read
	To    string `json:"to,omitempty"`
	Text  string `json:"text,omitempty"`
	State string `json:"state,omitempty"`
	// send: wait for delivery even if the peer is offline, up to
	// TimeoutMS (default 30 s).
	Wait      bool  `json:"wait,omitempty"`
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// history: Peer is a name or id ("" for all), Since RFC 3339.
	Peer     string    `json:"peer,omitempty"`
	Limit    int       `json:"limit,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Search   string    `json:"search,omitempty"`
	MarkRead bool      `json:"mark_read,omitempty"`
	// read: message ids a person has seen.
	IDs []string `json:"ids,omitempty"`
}

// Reply is the node's answer.
type Reply struct {
	OK      bool           `json:"ok"`
	Error   string         `json:"error,omitempty"`
	Code    string         `json:"code,omitempty"` // unknown_recipient, ambiguous_recipient, offline, invalid, failed
	ID      string         `json:"id,omitempty"`
	Name    string         `json:"name,omitempty"`
	Peers   []mesh.Peer    `json:"peers,omitempty"`
	To      *PeerRef       `json:"to,omitempty"`
	Matches []mesh.Peer    `json:"matches,omitempty"`
	Online  []mesh.Peer    `json:"online,omitempty"`
	State   string         `json:"state,omitempty"`
	History []HistoryEntry `json:"history,omitempty"`
	Outbox  []OutboxEntry  `json:"outbox,omitempty"`
}

const maxRequest = 1 << 20 // a request carries at most one message

func listenControl(dir string) (net.Listener, error) {
	path := ControlSocket(dir)
	// We hold the data directory's lock, so a socket file here is a
	// leftover of a node that died.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

func (n *Node) serveControl(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("control accept", "err", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			n.handleControl(ctx, c)
		}()
	}
}

func (n *Node) handleControl(ctx context.Context, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	enc := json.NewEncoder(c)
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(Reply{Error: "bad request: " + err.Error(), Code: "invalid"})
		return
	}
	switch req.Op {
	case "id":
		info, _ := n.Info()
		enc.Encode(Reply{OK: true, ID: info.ID, Name: info.Name})
	case "peers":
		peers, err := n.Peers()
		if err != nil {
			enc.Encode(errorReply(err))
			return
		}
		enc.Encode(Reply{OK: true, Peers: peers})
	case "status":
		st, err := mesh.ParseState(req.State)
		if err == nil {
			err = n.SetStatus(st, req.Text)
		}
		if err != nil {
			enc.Encode(Reply{Error: err.Error(), Code: "invalid"})
			return
		}
		enc.Encode(Reply{OK: true})
	case "send":
		timeout := 30 * time.Second
		if req.TimeoutMS > 0 {
			timeout = time.Duration(req.TimeoutMS) * time.Millisecond
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := n.Send(sctx, req.To, req.Text, req.Wait)
		if err != nil {
			r := errorReply(err)
			if res.To.ID != "" {
				r.To = &res.To
			}
			enc.Encode(r)
			return
		}
		enc.Encode(Reply{OK: true, ID: res.ID, To: &res.To, State: res.State})
	case "history":
		h, err := n.HistoryFor(ctx, HistoryQuery{Peer: req.Peer, Limit: req.Limit, Since: req.Since, Search: req.Search}, req.MarkRead)
		if err != nil {
			enc.Encode(errorReply(err))
			return
		}
		enc.Encode(Reply{OK: true, History: h})
	case "outbox":
		o, err := n.OutboxFor(ctx)
		if err != nil {
			enc.Encode(errorReply(err))
			return
		}
		enc.Encode(Reply{OK: true, Outbox: o})
	case "read":
		if err := n.MarkRead(ctx, req.IDs); err != nil {
			enc.Encode(errorReply(err))
			return
		}
		enc.Encode(Reply{OK: true})
	case "events":
		n.streamEvents(ctx, c)
	default:
		enc.Encode(Reply{Error: fmt.Sprintf("unknown op %q", req.Op), Code: "invalid"})
	}
}

func errorReply(err error) Reply {
	r := Reply{Error: err.Error(), Code: "failed"}
	var re *RecipientError
	switch {
	case errors.As(err, &re):
		r.Matches, r.Online = re.Matches, re.Online
		r.Code = "unknown_recipient"
		if errors.Is(err, ErrAmbiguousRecipient) {
			r.Code = "ambiguous_recipient"
		}
	case errors.Is(err, ErrPeerOffline):
		r.Code = "offline"
	case errors.Is(err, ErrInvalidText), errors.Is(err, mesh.ErrMeta):
		r.Code = "invalid"
	}
	return r
}

// streamEvents writes events to c until it hangs up. A client that does
// not keep up is cut off rather than allowed to stall the node.
func (n *Node) streamEvents(ctx context.Context, c net.Conn) {
	ch := make(chan any, 1024)
	var once sync.Once
	slow := make(chan struct{})
	cancel := n.Subscribe(func(ev any) {
		select {
		case ch <- ev:
		default:
			once.Do(func() { close(slow) })
		}
	})
	defer cancel()
	if info, ok := n.Info(); ok {
		ch <- info
	}
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // returns when the client closes
		close(gone)
	}()
	enc := json.NewEncoder(c)
	for {
		select {
		case ev := <-ch:
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := enc.Encode(ev); err != nil {
				return
			}
		case <-slow:
			n.log.Warn("control client too slow for events; disconnecting it")
			return
		case <-gone:
			return
		case <-ctx.Done():
			return
		}
	}
}
