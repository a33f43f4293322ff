package chat

import (
	"context"
	"strings"
	"sync"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// Writing to rooms: sending, joining and leaving, and handing the events
// to the members online.

// fanout hands env to each of peers and returns how many stored it. A
// peer that refuses it for a gap in our sequence is fetching the gap
// from us; it is offered again until ctx ends, for at most
// RoomPullTimeout.
func (r *rooms) fanout(ctx context.Context, env *message.Envelope, peers []string) int {
	if r.s.cfg.Transport == nil || len(peers) == 0 {
		return 0
	}
	var (
		mu      sync.Mutex
		reached int
		wg      sync.WaitGroup
	)
	item := []message.Queued{{ID: env.ID, Sealed: env.Sealed()}}
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var giveUp time.Time // when a peer that keeps finding a gap is no longer waited for
			for {
				errs := r.s.cfg.Transport.SendBatch(ctx, p, item, func(bool) {})
				if errs[0] == nil {
					mu.Lock()
					reached++
					mu.Unlock()
					return
				}
				if !strings.Contains(errs[0].Error(), errGap.Error()) {
					r.s.log.Debug("room event not delivered", "peer", mesh.ShortID(p), "room", env.Conversation, "err", errs[0])
					return
				}
				// The peer fetches the gap with a pull, which takes at
				// most RoomPullTimeout; one that still says "gap" after
				// that (a hostile one can, for ever) gets the event from
				// its next pull instead of holding a waiting send.
				if giveUp.IsZero() {
					giveUp = time.Now().Add(r.s.cfg.RoomPullTimeout)
				} else if time.Now().After(giveUp) {
					r.s.log.Debug("room event not delivered: the peer still finds a gap", "peer", mesh.ShortID(p), "room", env.Conversation)
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(gapRetry):
				}
			}
		}()
	}
	wg.Wait()
	return reached
}

// SendRoom writes a message to room and hands it to every member online
// now. Members who are not get it from whichever member they meet
// first. With wait, SendRoom waits until ctx ends for those online now
// to have it; without, at most a few seconds.
func (s *Service) SendRoom(ctx context.Context, room, text string, wait bool) (RoomSendResult, error) {
	if err := CheckText(text); err != nil {
		return RoomSendResult{}, err
	}
	if s.ctx.Err() != nil {
		return RoomSendResult{}, ErrClosed
	}
	env, err := s.rooms.author(ctx, room, message.KindText, text)
	if err != nil {
		return RoomSendResult{Room: room}, err
	}
	s.rooms.publish(env, true)
	peers, err := s.rooms.onlineMembers(ctx, room)
	if err != nil {
		s.log.Warn("room members", "room", room, "err", err)
	}
	fctx := ctx
	if !wait {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, fanoutTimeout)
		defer cancel()
	}
	res := RoomSendResult{ID: env.ID, Room: room, Online: len(peers), State: store.Sent}
	res.Reached = s.rooms.fanout(fctx, env, peers)
	if res.Reached == res.Online {
		res.State = store.Delivered
		if _, err := s.st.SetState(context.WithoutCancel(ctx), env.ID, store.Delivered); err != nil {
			s.log.Warn("record room delivery", "err", err)
		}
	}
	return res, nil
}

// JoinRoom joins room (nothing happens if we are in it), tells everyone
// online, and catches up on its history from its members.
func (s *Service) JoinRoom(ctx context.Context, room string) (RoomInfo, error) {
	if s.ctx.Err() != nil {
		return RoomInfo{}, ErrClosed
	}
	env, err := s.rooms.author(ctx, room, message.KindJoin, "")
	if err != nil {
		return RoomInfo{}, err
	}
	if env != nil {
		s.rooms.publish(env, true)
		s.rooms.announce(env)
	}
	s.rooms.catchUp(room, maxPulls)
	return s.RoomInfo(ctx, room)
}

// LeaveRoom leaves room and tells everyone online. The room's history
// stays.
func (s *Service) LeaveRoom(ctx context.Context, room string) (RoomInfo, error) {
	if s.ctx.Err() != nil {
		return RoomInfo{}, ErrClosed
	}
	env, err := s.rooms.author(ctx, room, message.KindLeave, "")
	if err != nil {
		return RoomInfo{}, err
	}
	s.rooms.publish(env, true)
	s.rooms.announce(env)
	return s.RoomInfo(ctx, room)
}

// announce hands a membership event of ours to every peer online, in
// the background: members add it to the room's log, the others to
// their directory.
func (r *rooms) announce(env *message.Envelope) {
	var peers []string
	for _, p := range r.s.cfg.Presence.Peers() {
		if p.ID != r.s.cfg.Self && p.Online() {
			peers = append(peers, p.ID)
		}
	}
	r.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
		defer cancel()
		r.fanout(ctx, env, peers)
	})
}

// joinGeneral joins GeneralRoom on a node's first start: a node that has
// ever been in it (and may have left it) is left as it is.
func (r *rooms) joinGeneral(ctx context.Context) error {
	mine, err := r.s.st.Directory(ctx, GeneralRoom, r.s.cfg.Self)
	if err != nil || len(mine) > 0 {
		return err
	}
	env, err := r.author(ctx, GeneralRoom, message.KindJoin, "")
	if err == nil && env != nil {
		r.publish(env, true)
		r.announce(env)
		r.catchUp(GeneralRoom, maxPulls)
	}
	return err
}
