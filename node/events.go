package node

import (
	"time"

	"lanchat/mesh"
)

// The events a node reports, to `lanchat run`, to the control socket's
// event stream and to the terminal UI. Each marshals to one JSON object
// with a "type"; the field names are part of the scripting interface
// documented in the README.

// PeerRef names a peer in an event.
type PeerRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ReadyEvent is the first event of a run: who and where this node is.
type ReadyEvent struct {
	Type       string `json:"type"` // "ready"
	ID         string `json:"id"`
	Name       string `json:"name"`
	Addr       string `json:"addr"`
	GossipPort int    `json:"gossip_port"`
	Port       int    `json:"port"`
	Control    string `json:"control"`
	MDNS       bool   `json:"mdns"`
}

// MessageEvent is a message received (or, with Outgoing, sent by this node).
type MessageEvent struct {
	Type     string    `json:"type"` // "message"
	ID       string    `json:"id"`
	From     PeerRef   `json:"from"`
	To       PeerRef   `json:"to"`
	Text     string    `json:"text"`
	Time     time.Time `json:"time"`
	Outgoing bool      `json:"outgoing,omitempty"`
}

// PresenceEvent is a change in a peer's presence: joined, state or status
// changed, left cleanly, lost, or back.
type PresenceEvent struct {
	Type       string  `json:"type"` // "presence"
	Peer       PeerRef `json:"peer"`
	State      string  `json:"state"`
	StatusText string  `json:"status_text"`
	Change     string  `json:"change"`
	Addr       string  `json:"addr"`
	Verified   bool    `json:"verified"`
}

// WarningEvent is something a person should know that is not fatal.
type WarningEvent struct {
	Type string `json:"type"` // "warning"
	Text string `json:"text"`
}

func presenceEvent(ev mesh.Event) PresenceEvent {
	return PresenceEvent{
		Type:       "presence",
		Peer:       PeerRef{ID: ev.Peer.ID, Name: ev.Peer.Name},
		State:      ev.Peer.State.String(),
		StatusText: ev.Peer.Status,
		Change:     string(ev.Change),
		Addr:       ev.Peer.Addr.String(),
		Verified:   ev.Peer.Verified,
	}
}
