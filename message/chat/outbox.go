package chat

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// The outbox: every outgoing message is in the store first (state
// queued) and leaves it only when the recipient's node acknowledged it.
// One sender per peer delivers, in order, pipelined on one stream:
//
//   - A session starts when the peer appears, when something is queued
//     for a peer that is online, and every second for online peers with
//     something waiting (a message a one-shot command left, a failed try).
//     That check asks the store only when it may learn something (see
//     run): an idle node does no query.
//   - A session first reads the peer's outbox from the store, oldest
//     first, unless the previous session ended with the outbox empty and
//     nothing has been queued since but through Send: then the store
//     holds nothing the memory queue lacks, and the query is skipped.
//     Whenever the store says something waits for a peer (the
//     one-second check), the peer's next session reads the store again: a
//     one-shot command may have stored a message while this node started.
//     Messages Send queues during a session go to the memory queue and are
//     sent after what the store held; a message seen both ways is sent once.
//   - The first failure ends the session (the peer went away, or refused);
//     what is left stays in the store for the next session.
//   - An acknowledgement is reported at once and recorded in the store in
//     the background. If the process dies before that record, the message
//     is still queued on disk and is sent again: the recipient recognises
//     it and acknowledges it as a duplicate. Nothing is lost or shown twice.

// outItem is one message to send: what the outbox needs of a record.
type outItem struct {
	id, to, kind string
	sealed       []byte
	// stored, if not nil, tells when the store has the message: Send
	// hands a message over while its store write is still under way. Its
	// progress is recorded only after.
	stored *storeWait
}

// storeWait is a store write under way.
type storeWait struct {
	done      chan struct{} // closed when the write has finished
	err       error         // its outcome, set before done is closed
	published chan struct{} // closed once Send has reported the message: its delivery is reported after
}

func itemOf(r store.Record) outItem {
	return outItem{id: r.ID, to: r.To, kind: r.Kind, sealed: r.Sealed}
}

// flushWindow is how many messages a session reads from the store at a
// time.
const flushWindow = 1024

type outbox struct {
	s  *Service
	wg sync.WaitGroup // counts sessions

	mu     sync.Mutex // guards peers and closed
	peers  map[string]*peerOut
	closed bool // set when the node stops; no session starts after it

	done chan progress // to be recorded: written (sent) or acknowledged (delivered)

	// look is set when a message is queued or a session ends on a
	// failure: the retry check queries the store at its next round rather
	// than wait for another process's write.
	look     atomic.Bool
	lookWake chan struct{} // buffered 1: look was set (run's idle wait is cut short)
}

// progress is a message's step on its way, for the store.
type progress struct {
	it    outItem
	state store.State
}

type peerOut struct {
	queue    []outItem // queued by Send since the session last looked
	running  bool      // a session is delivering
	clean    bool      // the last session emptied the store's outbox for this peer
	needSync bool      // the store may hold messages the running session has not seen
}

func newOutbox(s *Service) *outbox {
	return &outbox{s: s, peers: map[string]*peerOut{}, done: make(chan progress, 8192), lookWake: make(chan struct{}, 1)}
}

func (o *outbox) peer(id string) *peerOut {
	p := o.peers[id]
	if p == nil {
		p = &peerOut{}
		o.peers[id] = p
	}
	return p
}

// add takes a message just stored as queued.
func (o *outbox) add(peer string, it outItem) {
	o.mu.Lock()
	p := o.peer(peer)
	p.queue = append(p.queue, it)
	o.mu.Unlock()
	o.setLook()
	o.kick(peer)
}

// setLook has the retry check query the store within retryEvery.
func (o *outbox) setLook() {
	o.look.Store(true)
	select {
	case o.lookWake <- struct{}{}:
	default:
	}
}

// resync says the store may hold messages for peer that the memory queue
// does not: receipts, or what a one-shot command stored while this node
// was starting. The next session, or the running one before it ends,
// reads the store.
func (o *outbox) resync(peer string) {
	o.mu.Lock()
	p := o.peer(peer)
	p.clean = false
	p.needSync = p.running
	o.mu.Unlock()
	o.kick(peer)
}

// kick starts a session for peer if it is online and none is running.
func (o *outbox) kick(peer string) {
	if o.s.ctx.Err() != nil {
		return
	}
	if _, ok := o.s.online(peer); !ok {
		return
	}
	o.mu.Lock()
	p := o.peer(peer)
	if p.running || o.closed {
		o.mu.Unlock()
		return
	}
	p.running = true
	synced := p.clean
	o.wg.Add(1) // under mu: run's Wait cannot have begun (it sets closed first)
	o.mu.Unlock()
	go func() {
		defer o.wg.Done()
		o.session(peer, synced)
	}()
}

// run records deliveries and retries peers with something waiting
// until ctx ends; then it waits for every session and records what they
// achieved.
//
// The retry check queries the store only when it can find something new:
// at start (what an earlier run left), every retryEvery while anything
// waits (for any peer: TestChaos once left a message stranded when only
// waits for online peers were looked at), within retryEvery after a
// message was queued or a session failed, and when another process wrote
// to the store (ExternalVersion, one cheap pragma, tells). Another
// process writes only around this node's start: a one-shot command that
// found no control socket yet (cli's open) stores and sends for a few
// seconds beside it. So the version is asked every retryEvery during
// externalWindow after the start, and then only every idleCheckEvery: a
// wake-up a second was a share of an idle node's CPU.
func (o *outbox) run(ctx context.Context) {
	started := time.Now()
	t := time.NewTimer(retryEvery)
	defer t.Stop()
	due := time.Now().Add(retryEvery) // when t fires
	var recWG sync.WaitGroup
	recWG.Add(1)
	go func() {
		defer recWG.Done()
		o.record()
	}()
	defer func() {
		o.drain()
		recWG.Wait()
	}()
	var (
		version int64 // ExternalVersion when the store was last queried
		known   bool  // version is valid
		retry   = true
	)
	// check is one round; it says whether to look again soon.
	check := func() bool {
		if o.s.cfg.Transport == nil {
			return false // nothing can be sent: what waits, waits for a node
		}
		// The version is read before the query: a write landing
		// between the two moves it, and the next round looks again.
		v, verr := o.s.st.ExternalVersion(ctx)
		if o.look.Swap(false) {
			retry = true
		}
		if !retry && known && verr == nil && v == version {
			return false
		}
		peers, err := o.s.st.PendingPeers(ctx)
		if err != nil {
			if ctx.Err() == nil {
				o.s.log.Warn("outbox", "err", err)
			}
			return true
		}
		version, known = v, verr == nil
		for _, peer := range peers {
			// Something waits on disk: look at the disk, not only at
			// what Send queued in memory.
			o.resync(peer)
		}
		// While anything waits, look every second, as before this
		// check learnt to skip: a peer offline now may be back without
		// a session having read the store (a presence flap under loss,
		// a session that ended as the message landed). Only a node with
		// nothing waiting skips its queries.
		retry = len(peers) > 0
		return retry
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.lookWake:
			if time.Until(due) > retryEvery {
				t.Stop()
				t.Reset(retryEvery)
				due = time.Now().Add(retryEvery)
			}
		case <-t.C:
			soon := check()
			wait := idleCheckEvery
			if soon || o.look.Load() || time.Since(started) < externalWindow {
				wait = retryEvery
			}
			t.Reset(wait)
			due = time.Now().Add(wait)
		}
	}
}

// The retry check's periods: while anything waits (or may have been
// written by another process), and otherwise; externalWindow is how long
// after the start another process may still write (a one-shot send waits
// up to 3 s for peers, then delivers).
const (
	retryEvery     = time.Second
	idleCheckEvery = 10 * time.Second
	externalWindow = time.Minute
)

// drain stops new sessions, waits for those running and closes the
// recorder's queue. It runs once, when the service stops.
func (o *outbox) drain() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.mu.Unlock()
	o.wg.Wait()
	close(o.done)
}

// recordLinger is how long the recorder waits for more progress to
// record in the same transaction.
const recordLinger = 5 * time.Millisecond

// record writes messages' progress (sent, delivered), many at a time:
// concurrent SetState calls share the store's group commit. A state only
// moves forward, so a "sent" recorded after "delivered" changes nothing.
func (o *outbox) record() {
	for pr := range o.done {
		// Collect for a few milliseconds: one transaction for many
		// records, and the store's writer stays free for the messages
		// being sent meanwhile, which a person is waiting on.
		batch := []progress{pr}
		linger := time.NewTimer(recordLinger)
	more:
		for len(batch) < 512 {
			select {
			case pr, ok := <-o.done:
				if !ok {
					break more
				}
				batch = append(batch, pr)
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		o.recordBatch(batch)
	}
}

// recordBatch writes a batch of progress: one statement per recipient and
// state. A state only moves forward, so a "sent" recorded after
// "delivered" changes nothing.
func (o *outbox) recordBatch(batch []progress) {
	type group struct {
		peer  string
		state store.State
	}
	ids := map[group][]string{}
	var order []group
	for _, pr := range batch {
		if w := pr.it.stored; w != nil {
			<-w.done
			if w.err != nil {
				continue // nothing stored, nothing to record
			}
		}
		g := group{pr.it.to, pr.state}
		if _, ok := ids[g]; !ok {
			order = append(order, g)
		}
		ids[g] = append(ids[g], pr.it.id)
	}
	for _, g := range order {
		// Not the service's context: progress made just before shutdown
		// is still worth recording.
		if _, err := o.s.st.ApplyReceipts(context.Background(), g.peer, ids[g], g.state); err != nil {
			o.s.log.Warn("record message states", "peer", mesh.ShortID(g.peer), "state", g.state, "count", len(ids[g]), "err", err)
		}
	}
}

// session delivers peer's waiting messages until there are none or a
// send fails.
func (o *outbox) session(peer string, synced bool) {
	ref := o.s.PeerRef(peer)
	seen := map[string]bool{} // sent in this session: a message may be both in the store and the queue
	for {
		var batch []outItem
		fromStore := !synced
		if !synced {
			recs, err := o.s.st.Outbox(o.s.ctx, peer, flushWindow)
			if err != nil {
				o.end(peer)
				return
			}
			for _, r := range recs {
				batch = append(batch, itemOf(r))
			}
			synced = len(recs) < flushWindow
		} else {
			o.mu.Lock()
			p := o.peer(peer)
			batch, p.queue = p.queue, nil
			if len(batch) == 0 {
				if p.needSync {
					p.needSync = false
					o.mu.Unlock()
					synced = false
					continue
				}
				p.running, p.clean = false, true
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
		}
		fresh := batch[:0]
		for _, it := range batch {
			if w := it.stored; w != nil {
				select {
				case <-w.done:
					if w.err != nil {
						continue // could not be stored: Send reports it not sent
					}
				default: // still being stored: it goes out meanwhile
				}
			}
			if !seen[it.id] {
				seen[it.id] = true
				fresh = append(fresh, it)
			}
		}
		if fromStore && len(fresh) == 0 && !synced {
			// A full window, every message already sent in this session:
			// their deliveries are not recorded yet. Give the recorder a
			// moment rather than read the same window again at once.
			select {
			case <-time.After(4 * recordLinger):
			case <-o.s.ctx.Done():
				o.end(peer)
				return
			}
			continue
		}
		if !o.sendAll(peer, ref, fresh) {
			o.end(peer)
			return
		}
		if synced && len(seen) > 8*flushWindow {
			seen = map[string]bool{} // the store's backlog is behind us; only queue items remain
		}
	}
}

// end finishes a failed session: the memory queue is dropped (the store
// has every message in it) and the next session reads the store. Those
// waiting on a message to the peer learn that this attempt failed.
func (o *outbox) end(peer string) {
	o.mu.Lock()
	p := o.peer(peer)
	p.queue, p.running, p.clean, p.needSync = nil, false, false, false
	o.mu.Unlock()
	o.setLook()
	o.s.watch.failed(peer)
}

// Messages go out in chunks: one chunk's frames in one write, and up to
// chunksInFlight chunks awaiting their acknowledgements at once.
const (
	chunkSize      = 256
	chunksInFlight = 4
)

// sendAll sends items in order and reports whether all were
// acknowledged.
func (o *outbox) sendAll(peer string, ref PeerRef, items []outItem) bool {
	ctx := o.s.ctx
	sem := make(chan struct{}, chunksInFlight)
	var wg sync.WaitGroup
	var once sync.Once
	stop := make(chan struct{})
	failed := func() bool {
		select {
		case <-stop:
			return true
		default:
			return ctx.Err() != nil
		}
	}
	for start := 0; start < len(items) && !failed(); start += chunkSize {
		chunk := items[start:min(start+chunkSize, len(items))]
		select {
		case sem <- struct{}{}:
		case <-stop:
			continue
		case <-ctx.Done():
			continue
		}
		written := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			q := make([]message.Queued, len(chunk))
			for i, it := range chunk {
				q[i] = message.Queued{ID: it.id, Sealed: it.sealed}
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var wasSent bool
			errs := o.s.cfg.Transport.SendBatch(ctx, peer, q, func(sent bool) {
				wasSent = sent
				close(written)
			})
			for i, it := range chunk {
				if err := errs[i]; err != nil {
					if wasSent {
						// On the wire but not acknowledged: "sent".
						o.done <- progress{it, store.Sent}
					}
					o.logFailure(peer, it, err)
					once.Do(func() { close(stop) })
					continue
				}
				o.done <- progress{it, store.Delivered}
				o.s.watch.delivered(it.id)
				if it.kind != message.KindText {
					continue
				}
				if w := it.stored; w != nil {
					// Send reports the message (and "queued") once our
					// store has it; "delivered" must not come first.
					<-w.published
					if w.err != nil {
						continue
					}
				}
				o.s.cfg.Publish(ReceiptEvent{ID: it.id, State: store.Delivered, Peer: ref})
			}
		}()
		<-written // the next chunk goes out after this one: oldest first on the wire
	}
	wg.Wait()
	return !failed()
}

func (o *outbox) logFailure(peer string, it outItem, err error) {
	switch {
	case o.s.ctx.Err() != nil:
	case errors.Is(err, message.ErrRejected):
		o.s.log.Warn("peer refused a message; it stays in the outbox", "peer", mesh.ShortID(peer), "msg", it.id, "err", err)
	default:
		o.s.log.Info("delivery failed; the message stays in the outbox", "peer", mesh.ShortID(peer), "msg", it.id, "err", err)
	}
}
