package node

import (
	"context"
	"strings"

	"lanchat/node/api"
)

// The node implements api.Typist in process.
var _ api.Typist = (*Node)(nil)

// Typing implements api.Typist: a direct conversation's typing
// indicator, sent sparingly and never queued (chat.Service.Typing).
func (n *Node) Typing(ctx context.Context, req api.TypingRequest) (api.TypingReply, error) {
	if n.closed() {
		return api.TypingReply{}, ErrClosed
	}
	to := strings.TrimSpace(req.To)
	if to == "" {
		return api.TypingReply{}, api.Errorf(api.CodeInvalid, "no recipient")
	}
	if strings.HasPrefix(to, "#") {
		return api.TypingReply{}, api.Errorf(api.CodeInvalid, "rooms have no typing indicators")
	}
	p, sent, err := n.chat.Typing(ctx, to)
	if err != nil {
		return api.TypingReply{}, apiError(err)
	}
	return api.TypingReply{To: ref(p), Sent: sent}, nil
}
