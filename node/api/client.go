package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Client is API over a node's control socket. Its methods are safe for
// concurrent use; each call's context bounds it.
type Client struct {
	path string
	tr   *http.Transport
	hc   *http.Client
}

var _ API = (*Client)(nil)

// Reply limits: what a client reads of a reply before giving up on it.
const (
	maxSmallReply = 1 << 20  // self, status, send, and error replies
	maxListReply  = 16 << 20 // peers, outbox
	maxHistory    = 64 << 20 // history
)

// connectTimeout bounds Connect's probe when its context has no earlier
// deadline.
const connectTimeout = 5 * time.Second

// NewClient returns a client of the node serving socketPath. It connects
// on first use.
func NewClient(socketPath string) *Client {
	c := &Client{path: socketPath}
	c.tr = &http.Transport{
		DialContext:            c.dial,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.hc = &http.Client{
		Transport: c.tr,
		// The API never redirects; a redirect (the mux cleaning a path) is
		// shown as the error it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Connect returns a client of the node serving socketPath once that node
// has answered, or an error wrapping ErrNoNode if nothing answers.
func Connect(ctx context.Context, socketPath string) (*Client, error) {
	c := NewClient(socketPath)
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	_, err := c.Self(pctx)
	switch {
	case err == nil:
		return c, nil
	case ctx.Err() != nil:
		err = ctx.Err()
	case errors.Is(err, ErrNoNode):
	case errors.Is(err, ErrClosed), pctx.Err() != nil:
		err = fmt.Errorf("%w (%s: %v)", ErrNoNode, socketPath, err)
	}
	c.Close()
	return nil, err
}

// Close closes the client's idle connections. A client stays usable.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

// Self implements API.
func (c *Client) Self(ctx context.Context) (Self, error) {
	var v Self
	err := c.call(ctx, "GET", "/v1/self", nil, nil, maxSmallReply, &v)
	return v, err
}

// Peers implements API.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var v []Peer
	err := c.call(ctx, "GET", "/v1/peers", nil, nil, maxListReply, &v)
	return v, err
}

// SetStatus implements API.
func (c *Client) SetStatus(ctx context.Context, req StatusRequest) (StatusReply, error) {
	var v StatusReply
	err := c.call(ctx, "PUT", "/v1/status", nil, req, maxSmallReply, &v)
	return v, err
}

// Send implements API.
func (c *Client) Send(ctx context.Context, req SendRequest) (SendReply, error) {
	var v SendReply
	err := c.call(ctx, "POST", "/v1/messages", nil, req, maxSmallReply, &v)
	return v, err
}

// History implements API.
func (c *Client) History(ctx context.Context, hq HistoryQuery) ([]HistoryEntry, error) {
	q := url.Values{}
	if hq.Peer != "" {
		q.Set("peer", hq.Peer)
	}
	if hq.Limit != 0 {
		q.Set("limit", strconv.Itoa(hq.Limit))
	}
	if !hq.Since.IsZero() {
		q.Set("since", hq.Since.Format(time.RFC3339Nano))
	}
	if hq.Before != "" {
		q.Set("before", hq.Before)
	}
	if hq.Search != "" {
		q.Set("search", hq.Search)
	}
	if hq.MarkRead {
		q.Set("mark_read", "true")
	}
	var v []HistoryEntry
	err := c.call(ctx, "GET", "/v1/history", q, nil, maxHistory, &v)
	return v, err
}

// Outbox implements API.
func (c *Client) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	var v []OutboxEntry
	err := c.call(ctx, "GET", "/v1/outbox", nil, nil, maxListReply, &v)
	return v, err
}

// MarkRead implements API.
func (c *Client) MarkRead(ctx context.Context, req ReadRequest) error {
	return c.call(ctx, "POST", "/v1/read", nil, req, 0, nil)
}

// Rooms implements API.
func (c *Client) Rooms(ctx context.Context) ([]Room, error) {
	var v []Room
	err := c.call(ctx, "GET", "/v1/rooms", nil, nil, maxListReply, &v)
	return v, err
}

// JoinRoom implements API.
func (c *Client) JoinRoom(ctx context.Context, req RoomRequest) (Room, error) {
	var v Room
	err := c.call(ctx, "POST", "/v1/rooms/join", nil, req, maxSmallReply, &v)
	return v, err
}

// LeaveRoom implements API.
func (c *Client) LeaveRoom(ctx context.Context, req RoomRequest) (Room, error) {
	var v Room
	err := c.call(ctx, "POST", "/v1/rooms/leave", nil, req, maxSmallReply, &v)
	return v, err
}

// SetRetention implements API.
func (c *Client) SetRetention(ctx context.Context, req RetentionRequest) (Room, error) {
	var v Room
	err := c.call(ctx, "POST", "/v1/rooms/retention", nil, req, maxSmallReply, &v)
	return v, err
}

// RoomMembers implements API.
func (c *Client) RoomMembers(ctx context.Context, room string) ([]RoomMember, error) {
	var v []RoomMember
	err := c.call(ctx, "GET", "/v1/rooms/members", url.Values{"room": {room}}, nil, maxListReply, &v)
	return v, err
}

// Events implements API: it reads the node's event stream.
func (c *Client) Events(ctx context.Context, fn func(Event) error) error {
	resp, err := c.do(ctx, "GET", "/v1/events", nil, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.replyError(ctx, "GET", "/v1/events", resp)
	}
	sc := bufio.NewScanner(resp.Body)
	// The line and its newline.
	sc.Buffer(make([]byte, 0, 64<<10), MaxEventLine+1)
	sc.Split(scanWholeLines)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := DecodeEvent(line)
		if errors.Is(err, errUnknownType) {
			continue // a newer node's event: skip it, as API.md tells clients to
		}
		if err != nil {
			return Errorf(CodeFailed, "event stream: "+err.Error())
		}
		if err := fn(ev); err != nil {
			return err
		}
		if ev.EventType() == TypeResync {
			return ErrResync
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return Errorf(CodeFailed, fmt.Sprintf("event stream: a line longer than %d bytes", MaxEventLine))
	} else if err != nil {
		return fmt.Errorf("%w (event stream: %v)", ErrClosed, err)
	}
	return fmt.Errorf("%w (the node ended the event stream)", ErrClosed)
}

// scanWholeLines is bufio.ScanLines without the last line unless it has
// its newline: a stream cut mid-line is an error, not a broken event.
func scanWholeLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, bytes.TrimSuffix(data[:i], []byte{'\r'}), nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return 0, nil, nil
}

// call makes one request and decodes its reply, at most limit bytes, into
// out (nil: no reply body is wanted).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body any, limit int64, out any) error {
	resp, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.replyError(ctx, method, path, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return c.lost(ctx, method, path, err)
	}
	if int64(len(data)) > limit {
		return Errorf(CodeFailed, fmt.Sprintf("%s %s: reply larger than %d bytes", method, path, limit))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return Errorf(CodeFailed, fmt.Sprintf("%s %s: decode reply: %v", method, path, err))
	}
	return nil
}

// do sends one request.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, Errorf(CodeInvalid, fmt.Sprintf("%s %s: encode request: %v", method, path, err))
		}
		rd = bytes.NewReader(b)
	}
	u := "http://lanchat" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, Errorf(CodeInvalid, fmt.Sprintf("%s %s: %v", method, path, err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.lost(ctx, method, path, err)
	}
	return resp, nil
}

// dialError marks a failure to reach the socket at all.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// ErrUnsafeSocket is returned when the file at the control socket's path
// is not a socket of our own uid: a client would hand what it sends to
// whoever put it there.
var ErrUnsafeSocket = errors.New("control socket is not ours")

// unsafeSocketError is a refusal to dial: a check, not a failure to reach.
type unsafeSocketError struct{ err error }

func (e *unsafeSocketError) Error() string { return e.err.Error() }
func (e *unsafeSocketError) Unwrap() error { return e.err }

// checkSocket refuses a path that is not a socket (a symlink included)
// owned by our uid. A missing one is a dialError: no node runs.
func checkSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return &dialError{err}
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return &unsafeSocketError{fmt.Errorf("%w: %s is %s, not a socket; refusing to talk to it", ErrUnsafeSocket, path, kindOf(fi.Mode()))}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return &unsafeSocketError{fmt.Errorf("%w: %s belongs to uid %d, not to us (uid %d); refusing to talk to it", ErrUnsafeSocket, path, st.Uid, os.Geteuid())}
	}
	return nil
}

func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if err := checkSocket(c.path); err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, &dialError{err}
	}
	return conn, nil
}

// lost is the error of a call that got no (whole) reply: the context's,
// ErrNoNode if the socket did not answer, else ErrClosed.
func (c *Client) lost(ctx context.Context, method, path string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ue2 *unsafeSocketError
	if errors.As(err, &ue2) {
		return ue2.err
	}
	var de *dialError
	if errors.As(err, &de) {
		return fmt.Errorf("%w (%v)", ErrNoNode, de.err)
	}
	return fmt.Errorf("%w (%s %s: %v)", ErrClosed, method, path, err)
}

// replyError decodes an error reply into its *Error.
func (c *Client) replyError(ctx context.Context, method, path string, resp *http.Response) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSmallReply))
	if err != nil {
		return c.lost(ctx, method, path, err)
	}
	e := new(Error)
	if json.Unmarshal(data, e) != nil || e.Code == "" {
		snippet := data
		if len(snippet) > 200 {
			snippet = snippet[:200]
		}
		e = &Error{Code: codeOfStatus(resp.StatusCode),
			Message: fmt.Sprintf("%s %s: %s: %q", method, path, resp.Status, bytes.TrimSpace(snippet))}
	}
	if e.Code == CodeOffline && e.Message == ErrClosed.Error() {
		return closedError{e}
	}
	return e
}

// codeOfStatus is the code of an error reply that carries none.
func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return CodeInvalid
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusServiceUnavailable:
		return CodeOffline
	}
	return CodeFailed
}

// closedError is the node's "node closed" reply: both its *Error (code
// offline) and ErrClosed, as the in-process error would be.
type closedError struct{ e *Error }

func (e closedError) Error() string   { return e.e.Message }
func (e closedError) Unwrap() []error { return []error{e.e, ErrClosed} }

// Contacts implements API.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var v []Contact
	err := c.call(ctx, "GET", "/v1/contacts", nil, nil, maxListReply, &v)
	return v, err
}

// Trust implements API.
func (c *Client) Trust(ctx context.Context, req TrustRequest) (Contact, error) {
	var v Contact
	err := c.call(ctx, "POST", "/v1/contacts/trust", nil, req, maxSmallReply, &v)
	return v, err
}

// Untrust implements API.
func (c *Client) Untrust(ctx context.Context, req TrustRequest) (Contact, error) {
	var v Contact
	err := c.call(ctx, "POST", "/v1/contacts/untrust", nil, req, maxSmallReply, &v)
	return v, err
}

// Doctor implements API.
func (c *Client) Doctor(ctx context.Context, q DoctorQuery) (DoctorReport, error) {
	var v DoctorReport
	var vals url.Values
	if q.Peer != "" {
		vals = url.Values{"peer": {q.Peer}}
	}
	err := c.call(ctx, "GET", "/v1/doctor", vals, nil, maxListReply, &v)
	return v, err
}
