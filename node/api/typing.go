package api

import (
	"context"
	"net/http"
)

// Typist is the typing-indicator part of the API. Like Files it stands
// beside API, so a front end that shows no typing need not implement
// it; the node and Client do. A handler whose implementation lacks it
// answers POST /v1/typing with CodeFailed.
type Typist interface {
	// Typing tells a peer that a person is writing to them now, or a
	// room's members online that a person is writing there. The node
	// sends at most one indicator every 3 s to a peer or a room and none
	// to a peer that is offline (it is dropped, never queued); either is
	// success. A room needs this node to be in it (ErrNotMember).
	Typing(ctx context.Context, req TypingRequest) (TypingReply, error)
}

// TypingRequest is the body of POST /v1/typing.
type TypingRequest struct {
	// To is a name, a whole id, or an id prefix of at least 4 characters,
	// or a room ("#general") this node is in.
	To string `json:"to"`
}

// TypingReply says whether an indicator went out now (false: one went
// less than 3 s ago, or the peer is offline or did not take it; for a
// room, no other member is online, or more than 50 are). For a room, To's
// ID and Name are the room.
type TypingReply struct {
	To   PeerRef `json:"to"`
	Sent bool    `json:"sent"`
}

// TypeTyping: a peer is typing to this node, or in a room (Room); a
// front end shows it for a few seconds (chat.TypingFor), or until a
// message from that peer (in that conversation).
const TypeTyping = "typing"

// Typing is a peer's typing indicator.
type Typing struct {
	Type string  `json:"type"` // "typing"
	Seq  uint64  `json:"seq"`
	Peer PeerRef `json:"peer"`
	// Room, if set, is the room the peer is typing in (a room this node
	// and the peer are both in); else the peer types to this node.
	Room string `json:"room,omitempty"`
}

func (e Typing) EventType() string        { return TypeTyping }
func (e Typing) EventSeq() uint64         { return e.Seq }
func (e Typing) WithSeq(seq uint64) Event { e.Seq = seq; return e }

func (s *server) typing(w http.ResponseWriter, r *http.Request) error {
	t, ok := s.impl.(Typist)
	if !ok {
		return Errorf(CodeFailed, "this node sends no typing indicators")
	}
	var req TypingRequest
	if err := s.decodeBody(w, r, maxRoomBody, &req); err != nil {
		return err
	}
	if req.To == "" {
		return Errorf(CodeInvalid, "no recipient")
	}
	v, err := t.Typing(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

// Typing implements Typist.
func (c *Client) Typing(ctx context.Context, req TypingRequest) (TypingReply, error) {
	var v TypingReply
	err := c.call(ctx, "POST", "/v1/typing", nil, req, maxSmallReply, &v)
	return v, err
}

var _ Typist = (*Client)(nil)
