package chat

import (
	"context"
	"errors"
	"sync"
	"time"

	"lanchat/message"
)

// Storage quotas for direct messages. Any LAN host may send, from as many
// fresh keys as it likes, at the per-key rate limit: without a bound on
// what they leave on disk, a stranger fills it. So a peer the person
// never trusted nor wrote to — a stranger — may put at most quotaStranger
// in the history, and all strangers together at most quotaStrangers;
// a pinned contact, or someone we wrote to, has quotaKnown. A message over
// quota is refused with a clear reason: its sender's node keeps it
// queued, so nothing is lost, and it goes through once the person trusts
// or answers the sender. Room events have quotas of their own (rooms.go).
//
// The strangers' total is taken from the history at start; a stranger
// who becomes known later in the run (trusted, or written to before it
// was loaded) is taken out of it at the next start: until then it errs
// on the strict side.
var (
	quotaKnown     int64 = 4 << 30
	quotaStranger  int64 = 16 << 20
	quotaStrangers int64 = 256 << 20
)

// maxUsage bounds the table of loaded peers; one dropped is loaded again
// from the history when it next sends.
const maxUsage = 10000

var errOverQuota = errors.New("the recipient keeps no more messages from senders it has not trusted or written to: it will take this one when it does")

type usage struct {
	bytes    int64
	talkedTo bool
}

// quota keeps what each peer has stored, loaded from the history the
// first time the peer sends, and the strangers' total.
type quota struct {
	s *Service

	since time.Time // what was stored before this is loadTotals'; after it, reserve's

	mu        sync.Mutex
	peers     map[string]*usage
	strangers int64 // bytes from strangers, all of them; see loadTotals
	totalled  bool  // the strangers' total from before this run is in
}

func newQuota(s *Service) *quota {
	return &quota{s: s, since: time.Now(), peers: map[string]*usage{}}
}

// loadTotals adds what strangers stored before this run to the strangers'
// total: one walk of the history, done in the background at start so a
// large history does not delay it. Until it is done, only each
// stranger's own quota applies.
func (q *quota) loadTotals(ctx context.Context) {
	var total int64
	// Only what was stored before this service could reserve anything:
	// what came since is counted by reserve, and must not be twice.
	err := q.s.st.ReceivedByPeer(ctx, q.since, func(peer string, n int64, talked bool) {
		if !talked && !q.s.TrustOf(peer, "").Trusted {
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
	q.strangers += total
	q.totalled = true
	q.mu.Unlock()
}

// known reports whether peer is a stranger's opposite: pinned, or written to.
func (q *quota) known(peer string, u *usage) bool {
	return u.talkedTo || q.s.TrustOf(peer, "").Trusted
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
	size := int64(len(env.Sealed()))
	known := q.known(env.Author, u)
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case known && u.bytes+size > quotaKnown,
		!known && u.bytes+size > quotaStranger,
		!known && q.strangers+size > quotaStrangers:
		return errOverQuota
	}
	u.bytes += size
	if !known {
		q.strangers += size
	}
	return nil
}

// release gives back what reserve took for env (a duplicate, or a failed
// write).
func (q *quota) release(env *message.Envelope) {
	size := int64(len(env.Sealed()))
	known := false
	q.mu.Lock()
	u := q.peers[env.Author]
	q.mu.Unlock()
	if u == nil {
		return
	}
	known = q.known(env.Author, u)
	q.mu.Lock()
	defer q.mu.Unlock()
	u.bytes -= size
	if !known {
		q.strangers = max(0, q.strangers-size)
	}
}

// wroteTo marks peer as someone this person talks to: no longer a
// stranger, whose bytes leave the strangers' total.
func (q *quota) wroteTo(peer string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if u := q.peers[peer]; u != nil && !u.talkedTo {
		if !q.s.TrustOf(peer, "").Trusted {
			q.strangers = max(0, q.strangers-u.bytes)
		}
		u.talkedTo = true
	}
}
