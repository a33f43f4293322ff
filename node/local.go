package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"lanchat/mesh"
	"lanchat/message/chat"
	"lanchat/message/store"
	"lanchat/node/api"
)

// The node implements the local API in process: the control socket
// serves these methods, and `lanchat run` reads its own events through
// them, so every front end takes the same path.
var _ api.API = (*Node)(nil)

// Self is who this node is and, once it listens, where.
func (n *Node) Self(ctx context.Context) (api.Self, error) {
	if n.closed() {
		return api.Self{}, ErrClosed
	}
	return n.self(), nil
}

func (n *Node) self() api.Self {
	me := n.mesh.Self()
	s := api.Self{ID: n.id.ID, Name: me.Name, State: me.State.String(), StatusText: me.Status, MDNS: !n.cfg.NoMDNS, Fingerprint: fingerprint(n.id.ID)}
	if r, ok := n.info(); ok {
		s.Running = true
		s.Addr, s.GossipPort, s.Port, s.Control = r.Addr, r.GossipPort, r.Port, r.Control
	}
	return s
}

// Peers lists every peer seen since the node started.
func (n *Node) Peers(ctx context.Context) ([]api.Peer, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	return withTrust(n.chat, apiPeers(n.mesh.Peers())), nil
}

// SetStatus changes this node's presence, live and for later starts.
func (n *Node) SetStatus(ctx context.Context, req api.StatusRequest) (api.StatusReply, error) {
	if n.closed() {
		return api.StatusReply{}, ErrClosed
	}
	st, err := parseStatus(req)
	if err != nil {
		return api.StatusReply{}, err
	}
	// One change at a time, so the events come in the order the
	// presence took its values.
	n.statusMu.Lock()
	defer n.statusMu.Unlock()
	if err := savePresence(n.cfg.DataDir, presence{state: st, text: req.Text}); err != nil {
		return api.StatusReply{}, apiError(err)
	}
	if err := n.mesh.SetPresence(st, req.Text); err != nil {
		return api.StatusReply{}, apiError(err)
	}
	// Every front end shows it, not only the one that asked.
	n.hub.publish(api.SelfChange{Type: api.TypeSelf, Self: n.self()})
	_, live := n.info()
	return api.StatusReply{State: st.String(), Text: req.Text, Live: live}, nil
}

func parseStatus(req api.StatusRequest) (mesh.State, error) {
	st, err := mesh.ParseState(req.State)
	if err != nil {
		return 0, api.Errorf(api.CodeInvalid, err.Error())
	}
	if err := mesh.ValidStatus(req.Text); err != nil {
		return 0, api.Errorf(api.CodeInvalid, "status text: "+err.Error())
	}
	return st, nil
}

// Send stores a message and delivers it; see chat.Service.Send.
func (n *Node) Send(ctx context.Context, req api.SendRequest) (api.SendReply, error) {
	if n.closed() {
		return api.SendReply{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout())
	defer cancel()
	return send(ctx, n.chat, req)
}

// send is Send for any chat service: the node's and a one-shot's.
func send(ctx context.Context, svc *chat.Service, req api.SendRequest) (api.SendReply, error) {
	if strings.TrimSpace(req.To) == "" {
		return api.SendReply{}, api.Errorf(api.CodeInvalid, "no recipient")
	}
	if strings.HasPrefix(strings.TrimSpace(req.To), "#") {
		res, err := svc.SendRoom(ctx, strings.TrimSpace(req.To), req.Text, req.Wait)
		if err != nil {
			return api.SendReply{}, apiError(err)
		}
		return apiRoomReply(res), nil
	}
	res, err := svc.Send(ctx, req.To, req.Text, req.Wait)
	if err != nil {
		err = apiError(err)
		if errors.Is(err, api.ErrClosed) {
			return api.SendReply{}, err
		}
		ae := api.AsError(err)
		if res.To.ID != "" {
			to := ref(res.To)
			ae.To = &to
		}
		return api.SendReply{}, ae
	}
	return apiSendReply(res), nil
}

// History returns stored messages, newest last.
func (n *Node) History(ctx context.Context, q api.HistoryQuery) ([]api.HistoryEntry, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	return history(ctx, n.chat, q)
}

func history(ctx context.Context, svc *chat.Service, q api.HistoryQuery) ([]api.HistoryEntry, error) {
	if q.Limit < 0 || q.Limit > api.MaxHistoryLimit {
		return nil, api.Errorf(api.CodeInvalid, fmt.Sprintf("limit %d: want 1 to %d", q.Limit, api.MaxHistoryLimit))
	}
	if err := q.CheckBefore(); err != nil {
		return nil, err
	}
	es, err := svc.History(ctx, chat.Query{
		Peer: strings.TrimSpace(q.Peer), Limit: q.Limit, Since: q.Since, Before: q.Before, Search: q.Search, MarkRead: q.MarkRead,
	})
	if q.Before != "" && errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, err.Error())
	}
	if err != nil {
		return nil, apiError(err)
	}
	return apiEntries(es), nil
}

// Outbox summarises what waits for whom.
func (n *Node) Outbox(ctx context.Context) ([]api.OutboxEntry, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	es, err := n.chat.Outbox(ctx)
	if err != nil {
		return nil, apiError(err)
	}
	return apiOutbox(es), nil
}

// MarkRead records that a person saw these received messages.
func (n *Node) MarkRead(ctx context.Context, req api.ReadRequest) error {
	if n.closed() {
		return ErrClosed
	}
	return markRead(ctx, n.chat, req)
}

func markRead(ctx context.Context, svc *chat.Service, req api.ReadRequest) error {
	if len(req.IDs) > api.MaxReadIDs {
		return api.Errorf(api.CodeInvalid, fmt.Sprintf("%d ids: at most %d at once", len(req.IDs), api.MaxReadIDs))
	}
	return apiError(svc.MarkRead(ctx, req.IDs))
}

// Events streams the node's events; see api.API.
func (n *Node) Events(ctx context.Context, fn func(api.Event) error) error {
	return n.hub.serve(ctx, n.self, n.cfg.EventBuffer, fn)
}
