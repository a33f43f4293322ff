package store

import (
	"context"
	"fmt"
	"time"
)

// PeerUsage is what one peer has put in the history by direct messages:
// the bytes of what it sent us (signed envelopes, as stored), and whether
// we ever wrote to it. Both walk that peer's conversation only.
func (s *Store) PeerUsage(ctx context.Context, peer string) (received int64, talkedTo bool, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT
	coalesce((SELECT sum(length(sealed)) FROM messages INDEXED BY messages_peer WHERE peer = ?1 AND conversation = '' AND outgoing = 0), 0),
	EXISTS (SELECT 1 FROM messages INDEXED BY messages_peer WHERE peer = ?1 AND conversation = '' AND outgoing = 1)`, peer).Scan(&received, &talkedTo)
	if err != nil {
		return 0, false, fmt.Errorf("peer usage: %w", s.classify(err))
	}
	return received, talkedTo, nil
}

// ReceivedByPeer calls fn with each peer that sent us direct messages
// stored before before, the bytes those put in the history, and whether we
// ever wrote to it. It is a walk of the whole history (about half a second
// for 200,000 messages), for a total taken once, in the background.
func (s *Store) ReceivedByPeer(ctx context.Context, before time.Time, fn func(peer string, bytes int64, talkedTo bool)) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT peer,
	sum(CASE WHEN outgoing = 0 AND stored_at < ?1 THEN length(sealed) ELSE 0 END),
	max(outgoing)
FROM messages INDEXED BY messages_peer WHERE conversation = '' GROUP BY peer`, before.UnixNano())
	if err != nil {
		return fmt.Errorf("usage by peer: %w", s.classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var peer string
		var n int64
		var talked bool
		if err := rows.Scan(&peer, &n, &talked); err != nil {
			return err
		}
		fn(peer, n, talked)
	}
	return rows.Err()
}
