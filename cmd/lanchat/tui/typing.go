package tui

import (
	"context"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"lanchat/node/api"
)

// Typing indicators, direct conversations only (rooms have none): while
// the person types in one, the node is told at most every typingEvery;
// a peer's indicator shows in the status line for typingFor, or until a
// message from that peer.

const (
	typingEvery = 3 * time.Second
	typingFor   = 6 * time.Second
)

// maxTypingPeers bounds the table of when each conversation was last
// told; past it, it starts afresh (the node rate-limits as well).
const maxTypingPeers = 512

type typingExpiredMsg struct{}

// typed runs after the input line may have changed: if it did, in a
// direct conversation, and is not a command, the peer may be told.
func (m *Model) typed(before string) tea.Cmd {
	val := m.input.Value()
	if m.typist == nil || val == before || strings.TrimSpace(val) == "" || strings.HasPrefix(val, "/") && !strings.HasPrefix(val, "//") {
		return nil
	}
	key := m.cur
	if key == "" || strings.HasPrefix(key, "#") || m.peers[key] == nil || !m.peers[key].Online() {
		return nil
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
func (m *Model) peerTyping(v api.Typing) tea.Cmd {
	if v.Peer.ID == "" || v.Peer.ID == m.self.ID {
		return nil
	}
	now := m.now()
	for id, until := range m.typingFrom {
		if !until.After(now) {
			delete(m.typingFrom, id)
		}
	}
	if len(m.typingFrom) >= maxTypingPeers {
		return nil
	}
	m.typingFrom[v.Peer.ID] = now.Add(typingFor)
	// Draw again when it expires.
	return tea.Tick(typingFor+100*time.Millisecond, func(time.Time) tea.Msg { return typingExpiredMsg{} })
}

// typingLine is "bob is typing…" when the open conversation's person is.
func (m *Model) typingLine() string {
	until, ok := m.typingFrom[m.cur]
	if !ok || !until.After(m.now()) {
		return ""
	}
	return m.title(m.cur) + " is typing…"
}
