package node

import (
	"context"
	"strings"

	"lanchat/node/api"
)

// The node implements api.Typist in process.
var _ api.Typist = (*Node)(nil)

// Typing implements api.Typist: a direct conversation's typing
// indicator (chat.Service.Typing), or a room's, to its members online
// (chat.Service.RoomTyping); sent sparingly and never queued.
func (n *Node) Typing(ctx context.Context, req api.TypingRequest) (api.TypingReply, error) {
	if n.closed() {
		return api.TypingReply{}, ErrClosed
	}
	to := strings.TrimSpace(req.To)
	if to == "" {
		return api.TypingReply{}, api.Errorf(api.CodeInvalid, "no recipient")
	}
	if strings.HasPrefix(to, "#") {
		sent, err := n.chat.RoomTyping(ctx, to)
		if err != nil {
			return api.TypingReply{}, apiError(err)
		}
		return api.TypingReply{To: api.PeerRef{ID: to, Name: to}, Sent: sent}, nil
	}
	p, sent, err := n.chat.Typing(ctx, to)
	if err != nil {
		return api.TypingReply{}, apiError(err)
	}
	return api.TypingReply{To: ref(p), Sent: sent}, nil
}
