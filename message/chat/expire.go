package chat

import (
	"context"
	"time"
)

// Read receipts are worth sending while they are news. One to a peer who
// has not come back in a week tells them nothing they need, and a peer
// that never returns (a stranger, a machine gone for good) would keep one
// waiting for every time a person read its messages. So queued receipts
// give up after receiptTTL, and at most receiptsPerPeer wait for any one
// peer (each names up to maxReceiptIDs messages).
const (
	receiptTTL      = 7 * 24 * time.Hour
	receiptsPerPeer = 100
	expireEvery     = time.Hour
)

// expireReceipts drops stale queued receipts now and every expireEvery
// until ctx ends.
func (s *Service) expireReceipts(ctx context.Context) {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		n, err := s.st.ExpireQueued(ctx, KindReceipt, time.Now().Add(-receiptTTL), receiptsPerPeer)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("expire read receipts", "err", err)
		case n > 0:
			s.log.Info("gave up on read receipts nobody came back for", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
