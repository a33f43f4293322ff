package api

import (
	"context"
	"fmt"
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
	// Rooms lists the rooms this node is in, and the others it knows of
	// from its peers, ordered by name.
	Rooms(ctx context.Context) ([]Room, error)
	// JoinRoom joins a room, starting it if nobody is in it yet. Joining
	// a room this node is in already is not an error.
	JoinRoom(ctx context.Context, req RoomRequest) (Room, error)
	// LeaveRoom leaves a room; its history stays on disk. Leaving a room
	// this node is not in is ErrNotMember.
	LeaveRoom(ctx context.Context, req RoomRequest) (Room, error)
	// RoomMembers lists a room's members (those whose last word in the
	// room's log is a join), ordered by name then id.
	RoomMembers(ctx context.Context, room string) ([]RoomMember, error)
	// Contacts lists the contact book: pinned contacts first, then
	// strangers, each by name.
	Contacts(ctx context.Context) ([]Contact, error)
	// Trust pins a peer, named by id or id prefix (never by name), for
	// the name it uses: lanchat trust.
	Trust(ctx context.Context, req TrustRequest) (Contact, error)
	// Untrust unpins a peer; a later sighting does not pin it again.
	Untrust(ctx context.Context, req TrustRequest) (Contact, error)
	// Doctor explains what this node sees of the network, and of one peer
	// when the query names one, finding by finding with what to fix.
	Doctor(ctx context.Context, q DoctorQuery) (DoctorReport, error)
	// SetRetention sets how long a room's members keep its events (0:
	// for ever), as a signed event of this node in the room's log; the
	// room's members prune what is older. This node must be in the room
	// (ErrNotMember); a retention outside the bounds is ErrInvalid.
	SetRetention(ctx context.Context, req RetentionRequest) (Room, error)
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
	// Trusted: this id is pinned for its name (trust on first use, or
	// lanchat trust). Warning: it is not, and its name is a pinned
	// contact's, or looks like one, or like ours; show it with the name.
	Trusted bool   `json:"trusted,omitempty"`
	Warning string `json:"warning,omitempty"`
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
	// Fingerprint is ID as six groups of five digits, for people to
	// compare in person (lanchat id --fingerprint).
	Fingerprint string `json:"fingerprint"`
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
	// Reachable: online and reached by this node. Online but not
	// reachable: others see it and this node cannot reach it (a firewall
	// or a broken link between the two); SeenBy is then how many other
	// online peers keep it alive.
	Reachable bool `json:"reachable"`
	SeenBy    int  `json:"seen_by"`
	// Trusted and Warning: as in PeerRef.
	Trusted bool   `json:"trusted"`
	Warning string `json:"warning,omitempty"`
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
	// To is a name, a whole id, or an id prefix of at least 4 characters,
	// or a room ("#general"), which the sender must be in.
	To   string `json:"to"`
	Text string `json:"text"` // 1 byte to 64 KiB of UTF-8
	// Wait waits for delivery even when the recipient is offline, up to
	// TimeoutMS (default 30 s); without it Send returns as soon as the
	// message is delivered or safely queued. For a room it waits until
	// every member online when it was sent has it.
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
	To    PeerRef `json:"to"` // for a room: ID and Name are the room
	State string  `json:"state"`
	// Room is set for a room message; Online is how many other members
	// were online when it was sent and Reached how many of them have
	// stored it. Members who were offline get it from whichever member
	// they meet first.
	Room    string `json:"room,omitempty"`
	Online  int    `json:"online,omitempty"`
	Reached int    `json:"reached,omitempty"`
}

// Delivered reports whether the recipient's node has the message.
func (r SendReply) Delivered() bool { return r.State == "delivered" || r.State == "read" }

// HistoryQuery selects stored messages (GET /v1/history).
type HistoryQuery struct {
	Peer   string    // a name, id or id prefix, or a room ("#general"); "" for every conversation
	Limit  int       // newest N; 0 means DefaultHistoryLimit
	Since  time.Time // only messages after this
	Search string    // full-text search, words matched whole
	// MarkRead marks the received messages returned as read and sends
	// their authors read receipts: set it when a person will see them.
	MarkRead bool
	// Before, the id of a message of Peer's conversation, keeps only the
	// messages shown before it: with Limit, the page older than the
	// oldest one a reader holds. It needs Peer and no Search.
	Before string
}

// MaxBeforeLen bounds HistoryQuery.Before: message ids are far shorter.
const MaxBeforeLen = 128

// CheckBefore refuses a Before that cannot name a message of one
// conversation: too long, or without Peer, or with Search.
func (q HistoryQuery) CheckBefore() error {
	switch {
	case q.Before == "":
		return nil
	case len(q.Before) > MaxBeforeLen:
		return Errorf(CodeInvalid, fmt.Sprintf("before: %d bytes, at most %d", len(q.Before), MaxBeforeLen))
	case q.Peer == "":
		return Errorf(CodeInvalid, "before needs peer: it pages one conversation")
	case q.Search != "":
		return Errorf(CodeInvalid, "before does not go with search")
	}
	return nil
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
	// Room is set for a room's entries. Kind is "text" for a message,
	// "join" or "leave" for a member's arrival or departure, "retention"
	// for a member setting the room's retention (Text: the seconds).
	Room     string   `json:"room,omitempty"`
	Kind     string   `json:"kind,omitempty"`
	Mentions []string `json:"mentions,omitempty"` // peer ids named by @name in Text
	// ClaimedTime is set when the author's clock was more than five
	// minutes ahead of this node's: Time is then when it arrived, and
	// this is what the author's clock said.
	ClaimedTime *time.Time `json:"claimed_time,omitempty"`
	// Arrived is set on a received message that reached this node more
	// than five minutes after its Time: it waited in an outbox, or its
	// author's clock is behind.
	Arrived *time.Time `json:"arrived,omitempty"`
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

// Room is one group conversation as this node knows it.
type Room struct {
	Name          string `json:"name"`   // "#general"
	Joined        bool   `json:"joined"` // this node is a member
	MembersOnline int    `json:"members_online"`
	MembersTotal  int    `json:"members_total"`
	Unread        int    `json:"unread"`
	// Retention is how long the room's members keep its events, in
	// seconds; 0 keeps them for ever (the default). History shows only
	// what it keeps.
	Retention int64 `json:"retention"`
}

// RetentionRequest is the body of POST /v1/rooms/retention.
type RetentionRequest struct {
	Room      string `json:"room"`
	Retention int64  `json:"retention"` // seconds: 0 (for ever), or 3600 (an hour) to 315360000 (ten years)
}

// RoomRequest is the body of POST /v1/rooms/join and /v1/rooms/leave.
type RoomRequest struct {
	Room string `json:"room"` // "#" then 1-64 of a-z, 0-9, '-', '_', '.'
}

// RoomMember is one member of a room, with the presence the node knows.
type RoomMember struct {
	PeerRef
	State  string `json:"state"` // available, away, busy, offline, left
	Online bool   `json:"online"`
}

// Contact is an entry of the contact book (GET /v1/contacts).
type Contact struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Fingerprint is the id as six groups of five digits, to compare in
	// person with what the contact's own lanchat id --fingerprint says.
	Fingerprint string    `json:"fingerprint"`
	LastSeen    time.Time `json:"last_seen"`
	Trusted     bool      `json:"trusted"`
	// ByUser: pinned with lanchat trust, not on first use. Untrusted:
	// unpinned with lanchat untrust.
	ByUser    bool   `json:"by_user,omitempty"`
	Untrusted bool   `json:"untrusted,omitempty"`
	Warning   string `json:"warning,omitempty"`
}

// TrustRequest is the body of POST /v1/contacts/trust and untrust.
type TrustRequest struct {
	ID string `json:"id"` // a whole id, or a prefix of at least 4 characters
}

// DoctorQuery is GET /v1/doctor's parameters.
type DoctorQuery struct {
	Peer string // optional: a name, id or id prefix to examine too
}

// Finding statuses, worst last.
const (
	FindingOK   = "ok"
	FindingInfo = "info"
	FindingWarn = "warn"
	FindingFail = "fail"
)

// Finding is one line of lanchat doctor: a check, what it found, and what
// to do about it.
type Finding struct {
	Check  string `json:"check"`  // e.g. "interface", "multicast-route", "peer-message-port"
	Status string `json:"status"` // ok, info, warn or fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// DoctorReport is GET /v1/doctor's reply.
type DoctorReport struct {
	Running  bool      `json:"running"` // a node runs: its sockets and peers were examined
	Peer     *PeerRef  `json:"peer,omitempty"`
	Findings []Finding `json:"findings"`
}
