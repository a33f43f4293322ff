package chat

import (
	"context"
	"errors"
	"sync"
	"time"

	"lanchat/message"
	"lanchat/message/store"
)

// Storage quotas for direct messages. Any LAN host may send, from as many
// fresh keys as it likes, at the per-key rate limit: without a bound on
// what they leave on disk, a stranger fills it. So a peer the person
// never trusted nor wrote to — a stranger — may put at most
// quotaStranger in the history, and all strangers together at most
// quotaStrangers; a contact the person trusted (lanchat trust), or
// someone we wrote to, has quotaKnown. A pin on first use is not the
// person's trust: it guards a name, and a host joining under fresh names
// gets one per name (up to maxAutoPinned), so it leaves the peer a
// stranger here. A colleague who writes first is a stranger until the
// person answers: 16 MiB of disk is thousands of messages, and what is
// refused stays queued at the sender. What is counted is what a message costs on disk
// (store.DiskCost: its row, its text and its words in the search index,
// several times its signed bytes), so the quotas bound the history file
// itself. A message over quota is refused with a clear reason: its
// sender's node keeps it queued, so nothing is lost, and it goes through
// once the person trusts or answers the sender. Room events have quotas
// of their own (rooms.go).
//
// The strangers' total is taken from the history at start. A peer that
// changes side during the run — trusted, untrusted, written to — takes what it stored with it at once (moved).
const (
	quotaKnown     int64 = 4 << 30
	quotaStranger  int64 = 16 << 20
	quotaStrangers int64 = 256 << 20
)

// maxUsage bounds the table of loaded peers; one dropped is loaded again
// from the history when it next sends.
const maxUsage = 10000

var errOverQuota = errors.New("the recipient keeps no more messages from senders it has not trusted or written to: it will take this one when it does")

type usage struct {
	bytes    int64 // disk cost of what it stored (store.DiskCost)
	talkedTo bool
}

// quota keeps what each peer has stored, loaded from the history the
// first time the peer sends, and the strangers' total.
type quota struct {
	s *Service

	// The limits: the constants above, smaller in tests.
	known, stranger, strangers int64

	since  time.Time     // what was stored before this is loadTotals'; after it, reserve's
	walked chan struct{} // closed when loadTotals is over, done or failed

	mu         sync.Mutex // guards the fields below
	peers      map[string]*usage
	strangersN int64 // disk cost of what strangers stored, all of them; see loadTotals
	totalled   bool  // the strangers' total from before this run is in
}

func newQuota(s *Service) *quota {
	return &quota{
		s: s, known: quotaKnown, stranger: quotaStranger, strangers: quotaStrangers,
		since: time.Now(), walked: make(chan struct{}), peers: map[string]*usage{},
	}
}

// loadTotals adds what strangers stored before this run to the strangers'
// total: one walk of the history, done in the background at start so a
// large history does not delay it. Until it is done, only each
// stranger's own quota applies.
func (q *quota) loadTotals(ctx context.Context) {
	defer close(q.walked)
	var total int64
	// Only what was stored before this service could reserve anything:
	// what came since is counted by reserve, and must not be twice.
	err := q.s.st.ReceivedByPeer(ctx, q.since, func(peer string, n int64, talked bool) {
		if !talked && !q.s.trustedByUser(peer) {
			total += n
		}
	})
	if err != nil {
		if ctx.Err() == nil {
			q.s.log.Warn("storage quotas: cannot total the history", "err", err)
		}
		return
	}
	q.mu.Lock()
	q.strangersN += total
	q.totalled = true
	q.mu.Unlock()
}

// isKnown reports whether peer is a stranger's opposite: trusted by the
// person, or written to.
func (q *quota) isKnown(peer string, u *usage) bool {
	return u.talkedTo || q.s.trustedByUser(peer)
}

// load returns peer's usage, reading it from the history the first time.
// q.mu is not held.
func (q *quota) load(ctx context.Context, peer string) (*usage, error) {
	q.mu.Lock()
	u := q.peers[peer]
	q.mu.Unlock()
	if u != nil {
		return u, nil
	}
	n, talked, err := q.s.st.PeerUsage(ctx, peer)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if u := q.peers[peer]; u != nil {
		return u, nil // loaded meanwhile
	}
	if len(q.peers) >= maxUsage {
		for id := range q.peers { // any: it is loaded again when needed
			delete(q.peers, id)
			break
		}
	}
	u = &usage{bytes: n, talkedTo: talked}
	q.peers[peer] = u
	return u, nil
}

// reserve takes room for env, or says why there is none. What it takes
// is given back by release if env is not stored after all.
func (q *quota) reserve(ctx context.Context, env *message.Envelope) error {
	u, err := q.load(ctx, env.Author)
	if err != nil {
		return err
	}
	size := store.DiskCost(len(env.Sealed()))
	known := q.isKnown(env.Author, u)
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case known && u.bytes+size > q.known,
		!known && u.bytes+size > q.stranger,
		!known && q.strangersN+size > q.strangers:
		return errOverQuota
	}
	u.bytes += size
	if !known {
		q.strangersN += size
	}
	return nil
}

// release gives back what reserve took for env (a duplicate, or a failed
// write).
func (q *quota) release(env *message.Envelope) {
	size := store.DiskCost(len(env.Sealed()))
	q.mu.Lock()
	u := q.peers[env.Author]
	q.mu.Unlock()
	if u == nil {
		return
	}
	known := q.isKnown(env.Author, u)
	q.mu.Lock()
	defer q.mu.Unlock()
	u.bytes -= size
	if !known {
		q.strangersN = max(0, q.strangersN-size)
	}
}

// wroteTo marks peer as someone this person talks to: no longer a
// stranger, whose bytes leave the strangers' total.
func (q *quota) wroteTo(ctx context.Context, peer string) {
	q.mu.Lock()
	u := q.peers[peer]
	q.mu.Unlock()
	if u != nil && u.talkedTo {
		return // the common case, paid nothing
	}
	if !q.settled(ctx) {
		return
	}
	u, err := q.load(ctx, peer)
	if err != nil {
		q.loadFailed(ctx, err)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !u.talkedTo && !q.s.trustedByUser(peer) {
		q.strangersN = max(0, q.strangersN-u.bytes)
	}
	u.talkedTo = true
}

// settled waits for the walk of loadTotals (a fraction of a second at
// start), which counts each peer on the side it is on when walked: a
// change of side is made and moved after it, so that nothing is moved
// that the walk did not count, nor counted by it after the move. It
// reports false if ctx ended first.
func (q *quota) settled(ctx context.Context) bool {
	select {
	case <-q.walked:
		return true
	case <-ctx.Done():
		return false
	}
}

// walkedYet reports whether loadTotals is over, without waiting.
func (q *quota) walkedYet() bool {
	select {
	case <-q.walked:
		return true
	default:
		return false
	}
}

// retrusted moves what peer stored into or out of the strangers' total
// after the person's trust in it changed (lanchat trust or untrust) from
// wasTrusted to what it is now (trustedByUser). Call settled before the change.
func (q *quota) retrusted(ctx context.Context, peer string, wasTrusted bool) {
	u, err := q.load(ctx, peer)
	if err != nil {
		q.loadFailed(ctx, err)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if u.talkedTo {
		return // known either way
	}
	switch now := q.s.trustedByUser(peer); {
	case wasTrusted && !now:
		q.strangersN += u.bytes
	case !wasTrusted && now:
		q.strangersN = max(0, q.strangersN-u.bytes)
	}
}

func (q *quota) loadFailed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		q.s.log.Warn("storage quotas: cannot read a peer's usage", "err", err)
	}
}
