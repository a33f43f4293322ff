package store

import (
	"context"
	"fmt"
	"time"
)

// What a received message costs on disk, for storage quotas: besides its
// signed envelope, the history keeps its text in a column of its own,
// its row and index entries, and its words in the full-text index, which
// for short words all different (the worst case) takes several times the
// text. Measured with message/chat's TestQuotaBoundsTheDisk (the database
// file's growth, after a checkpoint, per message): 0.7 KB for a message of
// a few bytes (envelope 0.25 KB), 5.6× the envelope for 1 KB of distinct
// four-letter words, 4.1× for 60 KB of distinct eight-letter words, 2×
// for 60 KB of one repeated letter. DiskCost is above all of them. The
// write-ahead log comes on top, bounded whatever is stored (see Open).
const (
	diskCostRow  = 1024 // bytes per message
	diskCostByte = 6    // per byte of the signed envelope
)

// DiskCost is what a received message of sealedLen signed bytes is
// charged on disk (see diskCostRow).
func DiskCost(sealedLen int) int64 { return diskCostRow + diskCostByte*int64(sealedLen) }

// PeerUsage is what one peer has put in the history by direct messages:
// the disk cost of what it sent us (DiskCost of each signed envelope), and
// whether we ever wrote to it. Both walk that peer's conversation only.
func (s *Store) PeerUsage(ctx context.Context, peer string) (received int64, talkedTo bool, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT
	coalesce((SELECT sum(`+diskCostSQL+`) FROM messages INDEXED BY messages_peer WHERE peer = ?1 AND conversation = '' AND outgoing = 0), 0),
	EXISTS (SELECT 1 FROM messages INDEXED BY messages_peer WHERE peer = ?1 AND conversation = '' AND outgoing = 1)`, peer).Scan(&received, &talkedTo)
	if err != nil {
		return 0, false, fmt.Errorf("peer usage: %w", s.classify(err))
	}
	return received, talkedTo, nil
}

// diskCostSQL is DiskCost of a row's sealed column
// (TestDiskCostSQLIsDiskCost keeps the two in step).
const diskCostSQL = "(1024 + 6 * length(sealed))"

// ReceivedByPeer calls fn with each peer that sent us direct messages
// stored before before, their disk cost (DiskCost), and whether we
// ever wrote to it. It is a walk of the whole history (about half a second
// for 200,000 messages), for a total taken once, in the background.
func (s *Store) ReceivedByPeer(ctx context.Context, before time.Time, fn func(peer string, bytes int64, talkedTo bool)) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT peer,
	sum(CASE WHEN outgoing = 0 AND stored_at < ?1 THEN `+diskCostSQL+` ELSE 0 END),
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
