package chat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"lanchat/mesh"
	"lanchat/message"
)

// Catching up: when to pull a room from whom, and the pulls themselves.

// background runs f on the service's context, counted for Close, and
// reports whether it did: after stop nothing starts.
func (r *rooms) background(f func(ctx context.Context)) bool {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	if r.stopped || r.s.ctx.Err() != nil {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f(r.s.ctx)
	}()
	return true
}

// stop lets no more background work start and waits for what runs. A
// stream still delivering (the message service closes after us) may
// trigger a pull at any moment: without the lock its wg.Add could race
// with the Wait.
func (r *rooms) stop() {
	r.bmu.Lock()
	r.stopped = true
	r.bmu.Unlock()
	r.wg.Wait()
}

// catchUp pulls room from up to n of its online members, picked at random.
func (r *rooms) catchUp(room string, n int) {
	peers, err := r.onlineMembers(r.s.ctx, room)
	if err != nil {
		return
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers[:min(n, len(peers))] {
		r.pullLater(p, room)
	}
}

// pullLater pulls room from peer in the background, unless a pull of it
// from peer is under way.
func (r *rooms) pullLater(peer, room string) {
	if r.s.cfg.RoomSync == nil || peer == r.s.cfg.Self {
		return
	}
	k := [2]string{peer, room}
	r.pmu.Lock()
	if r.pulling[k] || len(r.pulling) >= maxPendingPulls {
		// Under way, or too many waiting already: every key a stranger
		// makes could ask for one. What is dropped is fetched by a
		// later trigger or the anti-entropy round.
		r.pmu.Unlock()
		return
	}
	r.pulling[k] = true
	r.pmu.Unlock()
	started := r.background(func(ctx context.Context) {
		defer func() {
			r.pmu.Lock()
			delete(r.pulling, k)
			r.pmu.Unlock()
		}()
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-r.sem }()
		// A slot is held for a bounded time, however slowly the peer
		// answers; what it did send is kept.
		pctx, cancel := context.WithTimeout(ctx, r.s.cfg.RoomPullTimeout)
		defer cancel()
		if err := r.pull(pctx, peer, room); err != nil && ctx.Err() == nil {
			r.s.log.Info("room catch-up failed", "room", room, "peer", mesh.ShortID(peer), "err", err)
		}
	})
	if !started {
		r.pmu.Lock()
		delete(r.pulling, k)
		r.pmu.Unlock()
	}
}

// pull fetches what peer holds of room past what we hold.
func (r *rooms) pull(ctx context.Context, peer, room string) error {
	have, joined, err := r.vector(ctx, room)
	if err != nil || !joined {
		return err
	}
	return r.s.cfg.RoomSync.Pull(ctx, peer, room, have, func(ctx context.Context, from, room string, envs []*message.Envelope) error {
		for i, err := range r.accept(ctx, from, envs) {
			// A setting handed before its author's events (the answer's
			// STATE) counts already, and its gap is what the rest of the
			// answer fills; one we refuse leaves the others to judge the
			// skips by.
			if err != nil && !errors.Is(err, errConflict) && envs[i].Kind != message.KindRetention {
				return fmt.Errorf("event %d of the page: %w", i, err)
			}
		}
		return nil
	})
}

// PeerMet tells the service that we met a peer: its key was just
// proven, or it came back (a healed split, a replugged cable) on a run
// proven before. Ask it which rooms it is in, then catch up on the rooms
// we share. The streams this opens check the peer's key themselves.
func (s *Service) PeerMet(id string) {
	r := s.rooms
	if s.cfg.RoomSync == nil || id == s.cfg.Self {
		return
	}
	// Every member meets a new node, and every member of the other side
	// of a healed split, at about the same moment: spread the streams
	// aimed at one peer as the mesh spreads its handshakes (mesh.Spread).
	online := 1
	for _, p := range s.cfg.Presence.Peers() {
		if p.Online() {
			online++
		}
	}
	wait := time.Duration(rand.Float64() * float64(mesh.Spread(online)))
	r.background(func(ctx context.Context) {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		envs, err := s.cfg.RoomSync.Index(ctx, id)
		cancel()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Debug("room index", "peer", mesh.ShortID(id), "err", err)
			}
		} else if len(envs) > 0 {
			r.accept(s.ctx, id, envs) // their membership: the directory, and the logs of rooms we share
		}
		rooms, err := r.joined(s.ctx)
		if err != nil {
			return
		}
		for _, room := range rooms {
			ids, err := r.reachable(s.ctx, room)
			if err == nil && slices.Contains(ids, id) {
				r.pullLater(id, room)
			}
		}
	})
}

// Ahead tells the service that peer holds more of room than we do (the
// catch-up server noticed): fetch it.
func (s *Service) Ahead(peer, room string) { s.rooms.pullLater(peer, room) }

// antiEntropy pulls each room we are in from one member at random, now
// and then, for whatever a missed event or a healed split left behind.
func (r *rooms) antiEntropy(ctx context.Context) {
	t := time.NewTicker(antiEntropyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rooms, err := r.joined(ctx)
		if err != nil {
			continue
		}
		// In a random order: when pulls are dropped for too many
		// waiting, the same rooms are not the ones left out every round.
		rand.Shuffle(len(rooms), func(i, j int) { rooms[i], rooms[j] = rooms[j], rooms[i] })
		for _, room := range rooms {
			r.catchUp(room, 1)
		}
	}
}
