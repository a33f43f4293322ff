package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/chat"
	"lanchat/message/roomsync"
	"lanchat/node/api"
)

// Rooms lists the rooms this node is in and those it heard of.
func (n *Node) Rooms(ctx context.Context) ([]api.Room, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	return rooms(ctx, n.chat)
}

// JoinRoom joins a room and catches up on its history.
func (n *Node) JoinRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	if n.closed() {
		return api.Room{}, ErrClosed
	}
	return joinRoom(ctx, n.chat, req)
}

// LeaveRoom leaves a room.
func (n *Node) LeaveRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	if n.closed() {
		return api.Room{}, ErrClosed
	}
	return leaveRoom(ctx, n.chat, req)
}

// RoomMembers lists a room's members.
func (n *Node) RoomMembers(ctx context.Context, room string) ([]api.RoomMember, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	return roomMembers(ctx, n.chat, room)
}

// SetRetention sets how long a room's members keep its events.
func (n *Node) SetRetention(ctx context.Context, req api.RetentionRequest) (api.Room, error) {
	if n.closed() {
		return api.Room{}, ErrClosed
	}
	return setRetention(ctx, n.chat, req)
}

// roomInfo is a room's counts for an event; a failure gives the name alone.
func (n *Node) roomInfo(room string) api.Room {
	info, err := n.chat.RoomInfo(context.Background(), room)
	if err != nil {
		return api.Room{Name: room}
	}
	return apiRoom(info)
}

// The same for any chat service: the node's and a one-shot's.

func rooms(ctx context.Context, svc *chat.Service) ([]api.Room, error) {
	rs, err := svc.Rooms(ctx)
	if err != nil {
		return nil, apiError(err)
	}
	return apiRooms(rs), nil
}

func joinRoom(ctx context.Context, svc *chat.Service, req api.RoomRequest) (api.Room, error) {
	r, err := svc.JoinRoom(ctx, strings.TrimSpace(req.Room))
	if err != nil {
		return api.Room{}, apiError(err)
	}
	return apiRoom(r), nil
}

func leaveRoom(ctx context.Context, svc *chat.Service, req api.RoomRequest) (api.Room, error) {
	r, err := svc.LeaveRoom(ctx, strings.TrimSpace(req.Room))
	if err != nil {
		return api.Room{}, apiError(err)
	}
	return apiRoom(r), nil
}

func setRetention(ctx context.Context, svc *chat.Service, req api.RetentionRequest) (api.Room, error) {
	if req.Retention < 0 || req.Retention > int64(chat.MaxRetention/time.Second) {
		return api.Room{}, apiError(fmt.Errorf("%w: retention %d s is out of range", chat.ErrInvalidRetention, req.Retention))
	}
	r, err := svc.SetRetention(ctx, strings.TrimSpace(req.Room), time.Duration(req.Retention)*time.Second)
	if err != nil {
		return api.Room{}, apiError(err)
	}
	return apiRoom(r), nil
}

func roomMembers(ctx context.Context, svc *chat.Service, room string) ([]api.RoomMember, error) {
	ms, err := svc.RoomMembers(ctx, strings.TrimSpace(room))
	if err != nil {
		return nil, apiError(err)
	}
	return apiRoomMembers(ms), nil
}

// roomSource serves the chat service's rooms to members catching up.
type roomSource struct{ svc *chat.Service }

var _ roomsync.Source = roomSource{}

func (s roomSource) Authorize(peer, room string) error { return s.svc.Authorize(peer, room) }

func (s roomSource) Heads(ctx context.Context, room string) (roomsync.Vector, error) {
	return s.svc.Heads(ctx, room)
}

func (s roomSource) Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error) {
	return s.svc.Page(ctx, room, author, after, limit)
}

func (s roomSource) Memberships(ctx context.Context) ([][]byte, error) { return s.svc.Memberships(ctx) }

func (s roomSource) Ahead(peer, room string, authors []string) { s.svc.Ahead(peer, room) }

// roomSyncClient is the chat service's way to catch up: the node's syncer.
type roomSyncClient struct{ n *Node }

var _ chat.RoomSync = roomSyncClient{}

func (c roomSyncClient) Pull(ctx context.Context, peer, room string, have map[string]uint64, accept func(context.Context, string, string, []*message.Envelope) error) error {
	_, err := c.n.sync.Pull(ctx, peer, room, have, sinkFunc(accept))
	return err
}

func (c roomSyncClient) Index(ctx context.Context, peer string) ([]*message.Envelope, error) {
	return c.n.sync.Index(ctx, peer)
}

// sinkFunc is a roomsync.Sink.
type sinkFunc func(ctx context.Context, from, room string, envs []*message.Envelope) error

func (f sinkFunc) Accept(ctx context.Context, from, room string, envs []*message.Envelope) error {
	return f(ctx, from, room, envs)
}

// The one-shot: rooms from the local history. A join or a leave is
// written there, and members learn of it from the next node run on this
// data directory (they fetch it when they meet it).

func (o *OneShot) Rooms(ctx context.Context) ([]api.Room, error) {
	var out []api.Room
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = rooms(ctx, svc)
		return err
	})
	return out, err
}

func (o *OneShot) JoinRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	var out api.Room
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = joinRoom(ctx, svc, req)
		return err
	})
	return out, err
}

func (o *OneShot) LeaveRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	var out api.Room
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = leaveRoom(ctx, svc, req)
		return err
	})
	return out, err
}

// SetRetention writes the setting into the local history; members get
// it from the next node run here, as a join written by a one-shot.
func (o *OneShot) SetRetention(ctx context.Context, req api.RetentionRequest) (api.Room, error) {
	var out api.Room
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = setRetention(ctx, svc, req)
		return err
	})
	return out, err
}

func (o *OneShot) RoomMembers(ctx context.Context, room string) ([]api.RoomMember, error) {
	var out []api.RoomMember
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = roomMembers(ctx, svc, room)
		return err
	})
	return out, err
}

// sendRoom writes a room message into the local history and hands it to
// the members the network shows online now; the others fetch it from
// the next node run here, or from whoever it reached.
func (o *OneShot) sendRoom(ctx context.Context, req api.SendRequest) (api.SendReply, error) {
	room := strings.TrimSpace(req.To)
	dir := &directory{peers: map[string]mesh.Peer{}}
	msvc := o.messageService(dir)
	defer msvc.Close()
	svc, closeAll, err := o.chatService(dir, msvc)
	if err != nil {
		return api.SendReply{}, apiError(err)
	}
	defer closeAll()
	members, err := svc.RoomMembers(ctx, room)
	if err != nil {
		return api.SendReply{}, apiError(err)
	}
	want := map[string]bool{}
	for _, m := range members {
		if m.ID != o.id.ID {
			want[m.ID] = true
		}
	}
	// Look until every member is seen, or discovery gives up.
	peers, _ := o.Discover(ctx, func(ps []mesh.Peer) bool {
		seen := 0
		for _, p := range ps {
			if want[p.ID] && p.Online() {
				seen++
			}
		}
		return seen == len(want)
	})
	dir.set(peers)
	res, err := svc.SendRoom(ctx, room, req.Text, req.Wait)
	if err != nil {
		return api.SendReply{}, apiError(err)
	}
	return apiRoomReply(res), nil
}

var _ roomsync.StateSource = roomSource{}

func (s roomSource) State(ctx context.Context, room string) ([][]byte, error) {
	return s.svc.State(ctx, room)
}
