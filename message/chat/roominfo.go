package chat

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"lanchat/mesh"
)

// What rooms look like from outside: listings, members, mentions, and
// the catch-up server's source.

// Rooms lists the rooms we are in and those we heard of, by name.
func (s *Service) Rooms(ctx context.Context) ([]RoomInfo, error) {
	names, err := s.st.DirectoryRooms(ctx)
	if err != nil {
		return nil, err
	}
	unread, err := s.st.RoomUnread(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RoomInfo, 0, len(names))
	for _, n := range names {
		info, err := s.roomInfo(ctx, n, unread)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// RoomInfo describes one room.
func (s *Service) RoomInfo(ctx context.Context, room string) (RoomInfo, error) {
	if err := CheckRoom(room); err != nil {
		return RoomInfo{}, err
	}
	// One room's count, not every room's: this runs for every room event.
	n, err := s.st.RoomUnreadIn(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	return s.roomInfo(ctx, room, map[string]int{room: n})
}

func (s *Service) roomInfo(ctx context.Context, room string, unread map[string]int) (RoomInfo, error) {
	ids, joined, err := s.rooms.members(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	ret, err := s.Retention(ctx, room)
	if err != nil {
		return RoomInfo{}, err
	}
	info := RoomInfo{Name: room, Joined: joined, MembersTotal: len(ids), Unread: unread[room], Retention: ret}
	for _, id := range ids {
		if id == s.cfg.Self {
			info.MembersOnline++
		} else if _, ok := s.online(id); ok {
			info.MembersOnline++
		}
	}
	return info, nil
}

// RoomMembers lists room's members with their presence, by name then id.
func (s *Service) RoomMembers(ctx context.Context, room string) ([]RoomMember, error) {
	if err := CheckRoom(room); err != nil {
		return nil, err
	}
	ids, _, err := s.rooms.members(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]RoomMember, 0, len(ids))
	for _, id := range ids {
		m := RoomMember{PeerRef: s.PeerRef(id), State: mesh.Offline}
		if id == s.cfg.Self {
			m.State, m.Online = mesh.Available, true
		} else if p, ok := s.cfg.Presence.Peer(id); ok {
			m.State, m.Online = p.State, p.Online()
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b RoomMember) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Mentions lists the members of room that text names with @name or
// @id-prefix (at least 4 characters of the id). Its cost is bounded
// whatever the text: the distinct words with '@' are gathered first (at
// most maxMentionWords of them), and each member's name is looked up
// once.
func (s *Service) Mentions(room, text string) []string {
	if !strings.Contains(text, "@") {
		return nil
	}
	var words []string
	for _, word := range strings.Fields(text) {
		if len(word) < 2 || word[0] != '@' {
			continue
		}
		w := strings.TrimRight(word[1:], ".,:;!?)")
		if w == "" || slices.Contains(words, w) {
			continue
		}
		if words = append(words, w); len(words) == maxMentionWords {
			break
		}
	}
	if len(words) == 0 {
		return nil
	}
	ids, _, err := s.rooms.members(s.ctx, room)
	if err != nil {
		return nil
	}
	var out []string
	for _, id := range ids {
		name := s.PeerRef(id).Name
		for _, w := range words {
			if strings.EqualFold(w, name) || len(w) >= 4 && strings.HasPrefix(id, strings.ToUpper(w)) {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// maxMentionWords is the most distinct @words of one message that are
// matched against the members.
const maxMentionWords = 32

// Source for the catch-up server: what we serve to members.

// Authorize serves room to anyone while we are in it: rooms are open, so
// any peer may join and read them; one we are not in we do not hold.
func (s *Service) Authorize(peer, room string) error {
	_, joined, err := s.rooms.vector(s.ctx, room)
	if err != nil {
		return err
	}
	if !joined {
		return fmt.Errorf("%w %s", ErrNotMember, room)
	}
	return nil
}

// Heads is what we hold of room.
func (s *Service) Heads(ctx context.Context, room string) (map[string]uint64, error) {
	v, _, err := s.rooms.vector(ctx, room)
	return v, err
}

// Page returns author's events in room past after: at most limit, and
// at most maxPageBytes of them beyond the first, so that a request costs
// the server one frame's worth of memory (limit events of 64 KiB each
// were 16 MiB, held by every stream a stranger opened).
func (s *Service) Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error) {
	return s.st.RoomPage(ctx, room, author, after, limit, maxPageBytes)
}

// maxPageBytes is the catch-up protocol's largest PAGE payload
// (roomsync.MaxPage).
const maxPageBytes = 1 << 20

// Memberships is our own latest membership event of every room we have
// been in.
func (s *Service) Memberships(ctx context.Context) ([][]byte, error) {
	mine, err := s.st.Directory(ctx, "", s.cfg.Self)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(mine))
	for i, e := range mine {
		out[i] = e.Sealed
	}
	return out, nil
}

// State is room's retention events, sealed, in order: what a member
// catching up needs before the events it may skip.
func (s *Service) State(ctx context.Context, room string) ([][]byte, error) {
	rs, err := s.rooms.settings(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(rs))
	for i, rt := range rs {
		out[i] = rt.Env.Sealed()
	}
	return out, nil
}
