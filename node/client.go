package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"lanchat/mesh"
)

// ErrNoNode means no node is running on the data directory.
var ErrNoNode = errors.New("no node running on this data directory")

// Client talks to a running node through its control socket.
type Client struct {
	path string
}

// Connect returns a client for the node running on dataDir, or ErrNoNode.
func Connect(dataDir string) (*Client, error) {
	path := ControlSocket(dataDir)
	c, err := dialUnix(path)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoNode, err)
	}
	c.Close()
	return &Client{path: path}, nil
}

func (c *Client) call(ctx context.Context, req Request) (Reply, error) {
	conn, err := dialUnix(c.path)
	if err != nil {
		return Reply{}, fmt.Errorf("%w (%v)", ErrNoNode, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Reply{}, fmt.Errorf("control socket: %w", err)
	}
	var r Reply
	if err := json.NewDecoder(io.LimitReader(conn, 64<<20)).Decode(&r); err != nil {
		if ctx.Err() != nil {
			return Reply{}, ctx.Err()
		}
		return Reply{}, fmt.Errorf("control socket: %w", err)
	}
	if !r.OK {
		return r, replyError(r)
	}
	return r, nil
}

// replyError turns a failed reply back into the error the node had, so
// callers match it with errors.Is/As just as with an in-process node.
func replyError(r Reply) error {
	switch r.Code {
	case "unknown_recipient":
		return &RecipientError{Query: "", Err: ErrUnknownRecipient, Online: r.Online, msg: r.Error}
	case "ambiguous_recipient":
		return &RecipientError{Query: "", Err: ErrAmbiguousRecipient, Matches: r.Matches, msg: r.Error}
	case "offline":
		return fmt.Errorf("%w: %s", ErrPeerOffline, trimPrefix(r.Error, ErrPeerOffline.Error()+": "))
	case "invalid":
		return fmt.Errorf("%w: %s", ErrInvalidRequest, r.Error)
	}
	return errors.New(r.Error)
}

// ErrInvalidRequest is a request the node refused as malformed.
var ErrInvalidRequest = errors.New("refused")

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// ID returns the running node's id and name.
func (c *Client) ID(ctx context.Context) (id, name string, err error) {
	r, err := c.call(ctx, Request{Op: "id"})
	return r.ID, r.Name, err
}

// Peers lists the running node's peers.
func (c *Client) Peers(ctx context.Context) ([]mesh.Peer, error) {
	r, err := c.call(ctx, Request{Op: "peers"})
	return r.Peers, err
}

// Send asks the node to store text for the peer to and deliver it; see
// Node.Send. timeout bounds the wait for delivery.
func (c *Client) Send(ctx context.Context, to, text string, wait bool, timeout time.Duration) (SendResult, error) {
	r, err := c.call(ctx, Request{Op: "send", To: to, Text: text, Wait: wait, TimeoutMS: timeout.Milliseconds()})
	res := SendResult{ID: r.ID, State: r.State}
	if r.To != nil {
		res.To = *r.To
	}
	return res, err
}

// History asks the node for stored messages; see Node.HistoryFor.
func (c *Client) History(ctx context.Context, q HistoryQuery, markRead bool) ([]HistoryEntry, error) {
	r, err := c.call(ctx, Request{Op: "history", Peer: q.Peer, Limit: q.Limit, Since: q.Since, Search: q.Search, MarkRead: markRead})
	return r.History, err
}

// Outbox asks the node what waits for whom.
func (c *Client) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	r, err := c.call(ctx, Request{Op: "outbox"})
	return r.Outbox, err
}

// MarkRead tells the node a person saw these received messages.
func (c *Client) MarkRead(ctx context.Context, ids []string) error {
	_, err := c.call(ctx, Request{Op: "read", IDs: ids})
	return err
}

// SetStatus changes the node's presence.
func (c *Client) SetStatus(ctx context.Context, state, text string) error {
	_, err := c.call(ctx, Request{Op: "status", State: state, Text: text})
	return err
}

// Events streams the node's events as raw JSON objects to fn until ctx
// ends or the node goes away.
func (c *Client) Events(ctx context.Context, fn func(json.RawMessage)) error {
	conn, err := dialUnix(c.path)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoNode, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(Request{Op: "events"}); err != nil {
		return err
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(json.RawMessage(append([]byte(nil), sc.Bytes()...)))
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return errors.New("node stopped")
}
