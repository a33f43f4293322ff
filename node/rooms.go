package node

import (
	"context"

	"lanchat/node/api"
)

// Rooms: see api.API. (Being built for issue 7.)
func (n *Node) Rooms(ctx context.Context) ([]api.Room, error) {
	return nil, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (n *Node) JoinRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	return api.Room{}, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (n *Node) LeaveRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	return api.Room{}, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (n *Node) RoomMembers(ctx context.Context, room string) ([]api.RoomMember, error) {
	return nil, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (o *OneShot) Rooms(ctx context.Context) ([]api.Room, error) {
	return nil, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (o *OneShot) JoinRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	return api.Room{}, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (o *OneShot) LeaveRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	return api.Room{}, api.Errorf(api.CodeFailed, "rooms are not built yet")
}

func (o *OneShot) RoomMembers(ctx context.Context, room string) ([]api.RoomMember, error) {
	return nil, api.Errorf(api.CodeFailed, "rooms are not built yet")
}
