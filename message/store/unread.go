package store

import (
	"context"
	"fmt"
)

// PeerCount is a number of messages of one peer's direct conversation.
type PeerCount struct {
	Peer  string
	Count int
}

// DirectUnread counts, per peer, the direct messages received and not yet
// read: the most first (then by id), at most limit peers. The unread
// index holds only unread rows, so this reads those and nothing else.
func (s *Store) DirectUnread(ctx context.Context, limit int) ([]PeerCount, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT author, count(*) AS n FROM messages INDEXED BY messages_unread
WHERE conversation = '' AND outgoing = 0 AND state < 3 AND kind = 'text' GROUP BY author ORDER BY n DESC, author LIMIT ?1`, limit)
	if err != nil {
		return nil, fmt.Errorf("direct unread: %w", s.classify(err))
	}
	defer rows.Close()
	var out []PeerCount
	for rows.Next() {
		var c PeerCount
		if err := rows.Scan(&c.Peer, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
