package api

import (
	"context"
	"time"
)

// API is everything a front end can ask of lanchat. The running node
// implements it in process; Client implements it over the control
// socket; a command with no node running uses the one-shot
// implementation, which finds peers and talks to them directly. A front
// end written against API has one code path for all three.
//
// Every error an implementation returns is an *Error (or wraps one), so
// callers match it with errors.Is against the sentinels below whichever
// implementation answered — but for ErrNoNode, ErrClosed, ErrResync and
// ErrNotRunning, which say something about the connection, not the
// request.
type API interface {
	// Self is who this data directory is, and where its node listens if
	// one runs.
	Self(ctx context.Context) (Self, error)
	// Peers lists every peer seen since the node started (or, one-shot,
	// what the network says), ordered by name then id.
	Peers(ctx context.Context) ([]Peer, error)
	// SetStatus changes this node's presence, live if a node runs, and
	// keeps it for the next start either way.
	SetStatus(ctx context.Context, req StatusRequest) (StatusReply, error)
	// Send stores a direct message and delivers it, at once if its
	// recipient is online, else when they return. A message kept for
	// later is not an error: the reply says "queued".
	Send(ctx context.Context, req SendRequest) (SendReply, error)
	// History returns stored messages, newest last.
	History(ctx context.Context, q HistoryQuery) ([]HistoryEntry, error)
	// Outbox summarises what waits for whom.
	Outbox(ctx context.Context) ([]OutboxEntry, error)
	// MarkRead records that a person saw these received messages; their
	// authors get read receipts.
	MarkRead(ctx context.Context, req ReadRequest) error
	// Events calls fn with a Snapshot, then with every later event in
	// order, each with a larger Seq, until ctx ends (nil), fn returns an
	// error (that error), or the node stops (ErrClosed). A subscriber that
	// falls behind is sent a Resync event and Events returns ErrResync: it
	// may call Events again for a fresh snapshot. fn is called from one
	// goroutine at a time.
	Events(ctx context.Context, fn func(Event) error) error
}

// PeerRef names a peer in a reply or an event.
type PeerRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Self describes this node. Addr, the ports and Control are set only
// while a node runs (Running).
type Self struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	StatusText string `json:"status_text"`
	Running    bool   `json:"running"`
	Addr       string `json:"addr,omitempty"`
	GossipPort int    `json:"gossip_port,omitempty"`
	Port       int    `json:"port,omitempty"`
	Control    string `json:"control,omitempty"`
	MDNS       bool   `json:"mdns"`
}

// Peer is one person on the network as the node knows them.
type Peer struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	State      string    `json:"state"` // available, away, busy, offline, left
	StatusText string    `json:"status_text"`
	Addr       string    `json:"addr"`
	GossipPort int       `json:"gossip_port"`
	Port       int       `json:"port"`
	Verified   bool      `json:"verified"` // its key was proven by a TLS handshake
	LastSeen   time.Time `json:"last_seen"`
}

// Online reports whether the peer is reachable now.
func (p Peer) Online() bool {
	return p.State == "available" || p.State == "away" || p.State == "busy"
}

// StatusRequest is the body of PUT /v1/status.
type StatusRequest struct {
	State string `json:"state"` // available, away or busy
	Text  string `json:"text"`  // at most 160 bytes
}

// StatusReply says what was set, and whether it is live (a node runs)
// or only kept for the next start.
type StatusReply struct {
	State string `json:"state"`
	Text  string `json:"text"`
	Live  bool   `json:"live"`
}

// SendRequest is the body of POST /v1/messages.
type SendRequest struct {
	To   string `json:"to"`   // a name, a whole id, or an id prefix of at least 4 characters
	Text string `json:"text"` // 1 byte to 64 KiB of UTF-8
	// Wait waits for delivery even when the recipient is offline, up to
	// TimeoutMS (default 30 s); without it Send returns as soon as the
	// message is delivered or safely queued.
	Wait      bool  `json:"wait,omitempty"`
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Timeout is TimeoutMS as a duration, defaulting to 30 s and at most
// MaxSendTimeout.
func (r SendRequest) Timeout() time.Duration {
	if r.TimeoutMS <= 0 {
		return DefaultSendTimeout
	}
	if r.TimeoutMS > MaxSendTimeout.Milliseconds() {
		return MaxSendTimeout
	}
	return time.Duration(r.TimeoutMS) * time.Millisecond
}

// DefaultSendTimeout bounds a send's wait for delivery; MaxSendTimeout is
// the longest a request may ask for.
const (
	DefaultSendTimeout = 30 * time.Second
	MaxSendTimeout     = 24 * time.Hour
)

// SendReply says where a message went and how far it got: queued, sent,
// delivered (the recipient's node stored it) or read.
type SendReply struct {
	ID    string  `json:"id"`
	To    PeerRef `json:"to"`
	State string  `json:"state"`
}

// Delivered reports whether the recipient's node has the message.
func (r SendReply) Delivered() bool { return r.State == "delivered" || r.State == "read" }

// HistoryQuery selects stored messages (GET /v1/history).
type HistoryQuery struct {
	Peer   string    // a name, id or id prefix; "" for every conversation
	Limit  int       // newest N; 0 means DefaultHistoryLimit
	Since  time.Time // only messages after this
	Search string    // full-text search, words matched whole
	// MarkRead marks the received messages returned as read and sends
	// their authors read receipts: set it when a person will see them.
	MarkRead bool
}

// DefaultHistoryLimit is how many messages History returns without a
// Limit; MaxHistoryLimit is the most it returns at once.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 100_000
)

// HistoryEntry is one stored message.
type HistoryEntry struct {
	ID       string    `json:"id"`
	From     PeerRef   `json:"from"`
	To       PeerRef   `json:"to"`
	Text     string    `json:"text"`
	Time     time.Time `json:"time"`
	Outgoing bool      `json:"outgoing"`
	State    string    `json:"state"` // queued, sent, delivered, read
}

// OutboxEntry is what waits for one recipient.
type OutboxEntry struct {
	Peer   PeerRef   `json:"peer"`
	Count  int       `json:"count"`
	Oldest time.Time `json:"oldest"`
}

// ReadRequest is the body of POST /v1/read.
type ReadRequest struct {
	IDs []string `json:"ids"` // at most MaxReadIDs
}

// MaxReadIDs bounds one ReadRequest.
const MaxReadIDs = 10_000
