package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/chat"
	"lanchat/message/store"
	"lanchat/node/api"
)

// The API owns its types; these turn the domain's into them.

func addrString(p mesh.Peer) string {
	if !p.Addr.IsValid() {
		return ""
	}
	return p.Addr.String()
}

func apiPeer(p mesh.Peer) api.Peer {
	return api.Peer{
		ID: p.ID, Name: p.Name, State: p.State.String(), StatusText: p.Status,
		Addr: addrString(p), GossipPort: int(p.GossipPort), Port: int(p.TLSPort),
		Verified: p.Verified, LastSeen: p.LastSeen.UTC().Truncate(time.Millisecond),
		Reachable: p.Reachable, SeenBy: p.SeenBy,
	}
}

func apiPeers(ps []mesh.Peer) []api.Peer {
	out := make([]api.Peer, 0, len(ps))
	for _, p := range ps {
		out = append(out, apiPeer(p))
	}
	sortAPIPeers(out)
	return out
}

func sortAPIPeers(ps []api.Peer) {
	slices.SortFunc(ps, func(a, b api.Peer) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func apiEntries(es []chat.Entry) []api.HistoryEntry {
	out := make([]api.HistoryEntry, 0, len(es))
	for _, e := range es {
		he := api.HistoryEntry{
			ID: e.ID, From: ref(e.From), To: ref(e.To), Text: e.Text, Time: e.Time,
			Outgoing: e.Outgoing, State: e.State.String(), Room: e.Room, Mentions: e.Mentions,
			ClaimedTime: optTime(e.ClaimedTime), Arrived: optTime(e.Arrived),
		}
		if e.Room != "" {
			he.Kind = roomKind(e.Kind)
		}
		out = append(out, he)
	}
	return out
}

// optTime is nil for the zero time, so that JSON leaves it out.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// roomKind is the API's name for a room entry's kind.
func roomKind(kind string) string {
	switch kind {
	case message.KindJoin:
		return "join"
	case message.KindLeave:
		return "leave"
	case message.KindRetention:
		return "retention"
	}
	return "text"
}

func apiRoom(r chat.RoomInfo) api.Room {
	return api.Room{Name: r.Name, Joined: r.Joined, MembersOnline: r.MembersOnline, MembersTotal: r.MembersTotal, Unread: r.Unread,
		Retention: int64(r.Retention / time.Second)}
}

func apiRooms(rs []chat.RoomInfo) []api.Room {
	out := make([]api.Room, 0, len(rs))
	for _, r := range rs {
		out = append(out, apiRoom(r))
	}
	return out
}

func apiRoomMembers(ms []chat.RoomMember) []api.RoomMember {
	out := make([]api.RoomMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, api.RoomMember{PeerRef: ref(m.PeerRef), State: m.State.String(), Online: m.Online})
	}
	return out
}

func apiRoomReply(r chat.RoomSendResult) api.SendReply {
	return api.SendReply{
		ID: r.ID, To: api.PeerRef{ID: r.Room, Name: r.Room}, State: r.State.String(),
		Room: r.Room, Online: r.Online, Reached: r.Reached,
	}
}

func apiOutbox(es []chat.OutboxEntry) []api.OutboxEntry {
	out := make([]api.OutboxEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.OutboxEntry{Peer: ref(e.Peer), Count: e.Count, Oldest: e.Oldest})
	}
	return out
}

func apiSendReply(r chat.SendResult) api.SendReply {
	return api.SendReply{ID: r.ID, To: ref(r.To), State: r.State.String()}
}

// apiError gives a domain error its API code, keeping its text.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	e := &api.Error{Code: api.CodeFailed, Message: err.Error()}
	var re *chat.RecipientError
	switch {
	case errors.As(err, &re):
		e.Code = api.CodeUnknownRecipient
		switch {
		case errors.Is(err, chat.ErrAmbiguousRecipient):
			e.Code = api.CodeAmbiguousRecipient
		case errors.Is(err, chat.ErrUntrustedName):
			e.Code = api.CodeUntrustedName
		}
		e.Matches, e.Online = apiPeers(re.Matches), apiPeers(re.Online)
	case errors.Is(err, mesh.ErrPeerOffline):
		e.Code = api.CodeOffline
	case errors.Is(err, chat.ErrInvalidText), errors.Is(err, chat.ErrInvalidRoom), errors.Is(err, chat.ErrInvalidRetention), errors.Is(err, mesh.ErrMeta), errConfig(err), errors.Is(err, errInvalid):
		e.Code = api.CodeInvalid
	case errors.Is(err, chat.ErrNotMember):
		e.Code = api.CodeNotMember
	case errors.Is(err, api.ErrClosed), errors.Is(err, chat.ErrClosed), errors.Is(err, store.ErrClosed):
		return fmt.Errorf("%w: %v", api.ErrClosed, err)
	}
	return e
}

// errInvalid marks a request the node refuses as malformed.
var errInvalid = errors.New("invalid request")
