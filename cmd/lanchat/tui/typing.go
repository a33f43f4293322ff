package tui

import (
	"context"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"lanchat/node/api"
)

// Typing indicators: while the person types in a direct conversation or
// a room, the node is told at most every typingEvery (it tells the peer,
// or the room's members online); a peer's indicator shows in the status
// line for typingFor, or until a message from that peer there.

const (
	typingEvery = 3 * time.Second
	typingFor   = 6 * time.Second
)

// maxTypingPeers bounds the table of when each conversation was last
// told, and the table of who is shown typing; past it, the first starts
// afresh and the second takes no more (the node rate-limits as well).
const maxTypingPeers = 512

type typingExpiredMsg struct{}

// typingKey is one person typing in one conversation: conv is the
// room, or for a direct conversation the peer's id.
type typingKey struct{ conv, peer string }

// typist is who is shown typing, and until when.
type typist struct {
	name  string
	until time.Time
}

// typed runs after the input line may have changed: if it did, in a
// conversation with someone online to tell, and is not a command, the
// node may be told.
func (m *Model) typed(before string) tea.Cmd {
	val := m.input.Value()
	if m.typist == nil || val == before || strings.TrimSpace(val) == "" || strings.HasPrefix(val, "/") && !strings.HasPrefix(val, "//") {
		return nil
	}
	key := m.cur
	if key == "" {
		return nil
	}
	if c := m.convs[key]; c != nil && c.room {
		// A room this node is in. Who of its members is online the node
		// knows (the room's counts here change only with room events).
		if !c.joined {
			return nil
		}
	} else if p := m.peers[key]; p == nil || !p.Online() || !p.Reachable {
		return nil // the node would not reach them
	}
	now := m.now()
	if last, ok := m.typingSent[key]; ok && now.Sub(last) < typingEvery {
		return nil
	}
	if len(m.typingSent) >= maxTypingPeers {
		clear(m.typingSent)
	}
	m.typingSent[key] = now
	t := m.typist
	return m.call(func(ctx context.Context) tea.Msg {
		t.Typing(ctx, api.TypingRequest{To: key}) // an indicator that did not go out is not worth a word
		return nil
	})
}

// peerTyping takes a peer's indicator: shown until typingFor from now.
// A room's counts only for a room this node is in (the node checked the
// peer is a member).
func (m *Model) peerTyping(v api.Typing) tea.Cmd {
	if v.Peer.ID == "" || v.Peer.ID == m.self.ID {
		return nil
	}
	k := typingKey{conv: v.Peer.ID, peer: v.Peer.ID}
	if v.Room != "" {
		if c := m.convs[v.Room]; c == nil || !c.room || !c.joined {
			return nil
		}
		k.conv = v.Room
	}
	now := m.now()
	for id, t := range m.typingFrom {
		if !t.until.After(now) {
			delete(m.typingFrom, id)
		}
	}
	if _, ok := m.typingFrom[k]; !ok && len(m.typingFrom) >= maxTypingPeers {
		return nil
	}
	m.typingFrom[k] = typist{name: v.Peer.Name, until: now.Add(typingFor)}
	// Draw again when it expires.
	return m.after(typingFor+100*time.Millisecond, func(time.Time) tea.Msg { return typingExpiredMsg{} })
}

// stoppedTyping: what from was typing in conv has come.
func (m *Model) stoppedTyping(conv, from string) {
	delete(m.typingFrom, typingKey{conv: conv, peer: from})
}

// typingLine says who is typing in the open conversation: "bob is
// typing…", "bob and carol are typing…", or past two "several people
// are typing…".
func (m *Model) typingLine() string {
	now := m.now()
	var names []string
	for k, t := range m.typingFrom {
		if k.conv != m.cur || !t.until.After(now) {
			continue
		}
		name := clean(t.name)
		if p := m.peers[k.peer]; p != nil && p.Name != "" {
			name = clean(p.Name)
		}
		if name == "" {
			name = short(k.peer)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0] + " is typing…"
	case 2:
		return names[0] + " and " + names[1] + " are typing…"
	}
	return "several people are typing…"
}
