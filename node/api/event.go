package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is one line of the event stream (GET /v1/events). Each type
// marshals to one JSON object with a "type" and a "seq"; the shapes are
// those `lanchat run --json` prints.
type Event interface {
	EventType() string
	EventSeq() uint64
	// WithSeq returns a copy numbered seq; only the node numbers events.
	WithSeq(seq uint64) Event
}

// Event types.
const (
	TypeSnapshot = "snapshot"
	TypeReady    = "ready"
	TypeMessage  = "message"
	TypePresence = "presence"
	TypeReceipt  = "receipt"
	TypeWarning  = "warning"
	TypeResync   = "resync"
	TypeRoom     = "room"
	TypeSelf     = "self"
)

// Snapshot is the first event of every subscription: the state that the
// events after it change. It is taken atomically with the subscription,
// so no event falls between them.
type Snapshot struct {
	Type  string `json:"type"` // "snapshot"
	Seq   uint64 `json:"seq"`
	Self  Self   `json:"self"`
	Peers []Peer `json:"peers"`
	Rooms []Room `json:"rooms"`
	// Unread lists the direct conversations with messages no person here
	// has seen yet, the most first, at most MaxSnapshotUnread of them
	// (rooms count theirs in Rooms). A person may be in it and not in
	// Peers: one not seen since the node started.
	Unread []DirectUnread `json:"unread"`
}

// DirectUnread is how many received messages of the direct conversation
// with Peer are not read yet.
type DirectUnread struct {
	Peer   PeerRef `json:"peer"`
	Unread int     `json:"unread"`
}

// MaxSnapshotUnread bounds Snapshot.Unread: a snapshot is one event line.
const MaxSnapshotUnread = 1000

// Ready says the node is up: who and where it is.
type Ready struct {
	Type       string `json:"type"` // "ready"
	Seq        uint64 `json:"seq"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	Addr       string `json:"addr"`
	GossipPort int    `json:"gossip_port"`
	Port       int    `json:"port"`
	Control    string `json:"control"`
	MDNS       bool   `json:"mdns"`
}

// Message is a message received, or with Outgoing one this node sent.
type Message struct {
	Type     string    `json:"type"` // "message"
	Seq      uint64    `json:"seq"`
	ID       string    `json:"id"`
	From     PeerRef   `json:"from"`
	To       PeerRef   `json:"to"`
	Text     string    `json:"text"`
	Time     time.Time `json:"time"`
	Outgoing bool      `json:"outgoing,omitempty"`
	// Room is set for a room message (To is then the room); Mentions
	// lists the peer ids its text names with @name or @id-prefix.
	Room     string   `json:"room,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	// ClaimedTime: as in HistoryEntry, the author's clock when it was
	// more than five minutes ahead of ours (Time is then the arrival).
	ClaimedTime *time.Time `json:"claimed_time,omitempty"`
}

// Presence changes: joined (first seen), returned (back, or restarted),
// status (name, state or text changed), verified (its key was proven by a
// TLS handshake), left (said goodbye), lost (gone without a word),
// unreachable (online for others, but this node cannot reach it) and
// reachable (reached from here again).
const (
	ChangeJoined      = "joined"
	ChangeReturned    = "returned"
	ChangeStatus      = "status"
	ChangeVerified    = "verified"
	ChangeLeft        = "left"
	ChangeLost        = "lost"
	ChangeUnreachable = "unreachable"
	ChangeReachable   = "reachable"
)

// Presence is a change in a peer's presence.
type Presence struct {
	Type       string  `json:"type"` // "presence"
	Seq        uint64  `json:"seq"`
	Peer       PeerRef `json:"peer"`
	State      string  `json:"state"`
	StatusText string  `json:"status_text"`
	Change     string  `json:"change"`
	Addr       string  `json:"addr"`
	Verified   bool    `json:"verified"`
	// Reachable and SeenBy: as in Peer.
	Reachable bool `json:"reachable"`
	SeenBy    int  `json:"seen_by"`
}

// Receipt is a change in the state of a message this node sent: queued,
// delivered (the recipient's node stored it) or read.
type Receipt struct {
	Type  string  `json:"type"` // "receipt"
	Seq   uint64  `json:"seq"`
	ID    string  `json:"id"`
	State string  `json:"state"`
	Peer  PeerRef `json:"peer"`
}

// Room changes.
const (
	RoomJoined = "joined" // a member joined (Peer is this node when it joined itself)
	RoomLeft   = "left"   // a member left
	// RoomRetention: a member set the room's retention (Room.Retention
	// is the new value).
	RoomRetention = "retention"
)

// RoomChange is a member joining or leaving a room, as the room's log
// says; the room's counts after the change come with it.
type RoomChange struct {
	Type   string  `json:"type"` // "room"
	Seq    uint64  `json:"seq"`
	Room   Room    `json:"room"`
	Peer   PeerRef `json:"peer"`
	Change string  `json:"change"` // joined, left
}

// SelfChange is this node's own presence set (PUT /v1/status) by any
// client: a front end shows it as its own, whoever set it.
type SelfChange struct {
	Type string `json:"type"` // "self"
	Seq  uint64 `json:"seq"`
	Self Self   `json:"self"`
}

// Warning is something a person should know that is not fatal.
type Warning struct {
	Type string `json:"type"` // "warning"
	Seq  uint64 `json:"seq"`
	Text string `json:"text"`
}

// Resync tells a subscriber it fell behind and events were dropped for
// it: what it holds is stale. It is the last event of its subscription;
// subscribe again for a fresh snapshot.
type Resync struct {
	Type    string `json:"type"` // "resync"
	Seq     uint64 `json:"seq"`  // the last event the subscriber was sent
	Dropped int    `json:"dropped,omitempty"`
	Reason  string `json:"reason"`
}

func (e Snapshot) EventType() string   { return TypeSnapshot }
func (e Ready) EventType() string      { return TypeReady }
func (e Message) EventType() string    { return TypeMessage }
func (e Presence) EventType() string   { return TypePresence }
func (e Receipt) EventType() string    { return TypeReceipt }
func (e Warning) EventType() string    { return TypeWarning }
func (e Resync) EventType() string     { return TypeResync }
func (e RoomChange) EventType() string { return TypeRoom }
func (e SelfChange) EventType() string { return TypeSelf }

func (e Snapshot) EventSeq() uint64   { return e.Seq }
func (e Ready) EventSeq() uint64      { return e.Seq }
func (e Message) EventSeq() uint64    { return e.Seq }
func (e Presence) EventSeq() uint64   { return e.Seq }
func (e Receipt) EventSeq() uint64    { return e.Seq }
func (e Warning) EventSeq() uint64    { return e.Seq }
func (e Resync) EventSeq() uint64     { return e.Seq }
func (e RoomChange) EventSeq() uint64 { return e.Seq }
func (e SelfChange) EventSeq() uint64 { return e.Seq }

func (e Snapshot) WithSeq(s uint64) Event   { e.Seq, e.Type = s, TypeSnapshot; return e }
func (e Ready) WithSeq(s uint64) Event      { e.Seq, e.Type = s, TypeReady; return e }
func (e Message) WithSeq(s uint64) Event    { e.Seq, e.Type = s, TypeMessage; return e }
func (e Presence) WithSeq(s uint64) Event   { e.Seq, e.Type = s, TypePresence; return e }
func (e Receipt) WithSeq(s uint64) Event    { e.Seq, e.Type = s, TypeReceipt; return e }
func (e Warning) WithSeq(s uint64) Event    { e.Seq, e.Type = s, TypeWarning; return e }
func (e Resync) WithSeq(s uint64) Event     { e.Seq, e.Type = s, TypeResync; return e }
func (e RoomChange) WithSeq(s uint64) Event { e.Seq, e.Type = s, TypeRoom; return e }
func (e SelfChange) WithSeq(s uint64) Event { e.Seq, e.Type = s, TypeSelf; return e }

// MaxEventLine bounds one line of the event stream: a message event
// carries at most 64 KiB of text, escaped.
const MaxEventLine = 1 << 20

// errUnknownType: an event of a type this build does not know.
var errUnknownType = errors.New("event: unknown type")

// DecodeEvent reads one line of the event stream into its typed event.
// An unknown type is an error (Client.Events skips such lines, so an
// older client keeps working with a newer node).
func DecodeEvent(line []byte) (Event, error) {
	if len(line) > MaxEventLine {
		return nil, fmt.Errorf("event of %d bytes, the limit is %d", len(line), MaxEventLine)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	var ev Event
	var err error
	switch head.Type {
	case TypeSnapshot:
		ev, err = decodeAs[Snapshot](line)
	case TypeReady:
		ev, err = decodeAs[Ready](line)
	case TypeMessage:
		ev, err = decodeAs[Message](line)
	case TypePresence:
		ev, err = decodeAs[Presence](line)
	case TypeReceipt:
		ev, err = decodeAs[Receipt](line)
	case TypeWarning:
		ev, err = decodeAs[Warning](line)
	case TypeResync:
		ev, err = decodeAs[Resync](line)
	case TypeRoom:
		ev, err = decodeAs[RoomChange](line)
	case TypeSelf:
		ev, err = decodeAs[SelfChange](line)
	case TypeFileOffer:
		ev, err = decodeAs[FileOffer](line)
	case TypeTransfer:
		ev, err = decodeAs[TransferChange](line)
	case TypeTyping:
		ev, err = decodeAs[Typing](line)
	default:
		return nil, fmt.Errorf("%w %q", errUnknownType, head.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s event: %w", head.Type, err)
	}
	return ev, nil
}

func decodeAs[T Event](line []byte) (Event, error) {
	var v T
	err := json.Unmarshal(line, &v)
	return v, err
}
