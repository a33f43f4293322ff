package store

import (
	"context"
	"fmt"
	"time"

	"lanchat/message"
)

// expireQueuedSQL deletes outgoing messages of one kind that are still
// waiting for their recipient (?1 the kind): those stored before ?2 (unix
// ns), and, for each recipient, all but the newest ?3. It walks the
// outbox's index only, so its cost is the outbox's size, not the
// history's.
const expireQueuedSQL = `
DELETE FROM messages WHERE seq IN (
	SELECT seq FROM (
		SELECT seq, stored_at, row_number() OVER (PARTITION BY peer ORDER BY wall DESC, logical DESC) AS rank
		FROM messages INDEXED BY messages_outbox
		WHERE outgoing = 1 AND state < 2 AND kind = ?1
	) WHERE stored_at < ?2 OR rank > ?3
)`

// ExpireQueued gives up on outgoing messages of kind that have waited
// for their recipient since before olderThan, and on all but the newest
// keep per recipient, and reports how many it deleted. The chat service
// uses it for read receipts, which matter only while they are fresh: a
// peer that never returns would otherwise keep one waiting for every
// time a person read its messages, forever. Messages a person wrote are
// never expired (kind is never message.KindText).
func (s *Store) ExpireQueued(ctx context.Context, kind string, olderThan time.Time, keep int) (int, error) {
	if kind == "" || kind == message.KindText || keep < 0 {
		return 0, fmt.Errorf("expire queued: kind %q, keep %d", kind, keep)
	}
	var n int64
	err := s.write(ctx, func(tx *wtx) error {
		res, err := tx.Exec(expireQueuedSQL, kind, olderThan.UnixNano(), keep)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire queued %s: %w", kind, err)
	}
	return int(n), nil
}
