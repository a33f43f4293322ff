package filexfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// ServiceConfig configures a Service. Start from DefaultServiceConfig.
type ServiceConfig struct {
	// Self is our peer id: with a transfer id it makes the id both sides
	// show for an outgoing transfer.
	Self string
	// Dial opens a stream to peer for proto (always ALPN); mesh's Dial
	// fits. Offer fails without it.
	Dial func(ctx context.Context, peer, proto string) (net.Conn, error)
	// Receive configures incoming transfers; its Decide is the Service's.
	Receive ReceiverConfig
	// Send configures every outgoing attempt.
	Send SendConfig
	// AcceptFrom reports whether offers from peer are accepted without
	// asking (auto-accept is opt-in: nil accepts none without asking).
	AcceptFrom func(peer string) bool
	// AcceptMaxSize bounds the offers AcceptFrom lets in; 0 is no bound.
	AcceptMaxSize int64
	// DecideTimeout is how long an offer waits for Accept or Decline on
	// one stream; the sender tries again later, and a decision taken
	// meanwhile holds for its next try.
	DecideTimeout time.Duration
	// RetryEvery is how often an outgoing transfer that was cut, or whose
	// recipient was away, is tried again.
	RetryEvery time.Duration
	// MaxPending bounds the offers waiting for a decision, and one peer
	// may have an eighth of them; more are refused. MaxKept bounds the
	// finished transfers listed.
	MaxPending, MaxKept int
	// OutboxPath, when set, is a file that keeps unfinished outgoing
	// offers across restarts (see outbox.go).
	OutboxPath string
	// SendOnly builds no Receiver (Receive.Dir is neither made nor
	// opened): the service only sends, as a one-shot command does, and
	// HandleStream closes every stream.
	SendOnly bool
	// Log gets the service's records; nil discards them.
	Log *slog.Logger
}

// DefaultServiceConfig returns a configuration for a download directory.
func DefaultServiceConfig(dir string) ServiceConfig {
	return ServiceConfig{
		Receive:       DefaultReceiverConfig(dir),
		Send:          DefaultSendConfig(),
		DecideTimeout: 90 * time.Second,
		RetryEvery:    5 * time.Second,
		MaxPending:    64,
		MaxKept:       256,
	}
}

// Transfer states.
const (
	StateOffered  = "offered"  // incoming, waiting for Accept or Decline
	StateWaiting  = "waiting"  // outgoing, the recipient is away or deciding; tried again
	StateActive   = "active"   // data is moving
	StateDone     = "done"     // every file verified and in place
	StateDeclined = "declined" // the recipient said no
	StateFailed   = "failed"   // ended for good; Error says why
)

// Transfer is one offer or transfer, either way, as a front end lists it.
type Transfer struct {
	ID        string   // the same on both sides
	Incoming  bool     // we are the recipient
	Peer      string   // the other side's id
	Names     []string // the top-level names offered
	Files     int      // files in the offer
	Total     int64    // their bytes
	Done      int64    // bytes verified (incoming) or sent or held (outgoing)
	FilesDone int      // files finished (incoming: verified and in place)
	Current   string   // the file being moved, while active
	// CurrentDone and CurrentSize are the current file's progress: its
	// bytes counted in Done since it began, and its size (a folder's
	// progress bar shows the file's and the whole offer's).
	CurrentDone, CurrentSize int64
	State                    string    // one of the State constants
	Error                    string    // why it failed, for StateFailed and StateDeclined
	Skipped                  []Skipped // outgoing: what was left out (links, special files)
	// Sent counts, outgoing, the file bytes this process wrote to the
	// recipient over every attempt, resent chunks included: what exceeds
	// the part of Total the recipient did not already hold went twice.
	Sent    int64
	Updated time.Time // the last change

	curStart int64 // Done when Current began
}

// Errors of the service's requests.
var (
	// ErrUnknownTransfer: no offer or transfer has that id.
	ErrUnknownTransfer = errors.New("no such transfer")
	// ErrNotPending: the offer was already accepted, declined or is gone.
	ErrNotPending = errors.New("offer is not waiting for a decision")
)

// Service is the file-transfer side of a node: it sends offers and keeps
// trying until they are done or refused, receives offers and asks (or,
// by policy, accepts), and lists all of it. Lifecycle: NewService starts
// nothing; Run retries outgoing transfers until its context ends; Close
// stops everything and waits.
type Service struct {
	cfg ServiceConfig
	rcv *Receiver
	log *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the service started

	mu     sync.Mutex       // guards the fields below
	xfers  map[string]*xfer // by Transfer.ID
	order  []string         // ids, oldest first
	subs   map[int]func(Transfer)
	nextID int
	closed bool
	// incoming ends each stream being received, by its peer (Cut).
	incoming map[*net.Conn]incomingStream
}

// incomingStream is a stream being received, for Cut.
type incomingStream struct {
	peer string
	end  context.CancelFunc
}

// xfer is a Transfer with what the service needs to drive it.
type xfer struct {
	t          Transfer
	src        *Source            // outgoing
	running    bool               // outgoing: an attempt is under way
	paths      []string           // outgoing: what was offered, kept in the outbox
	created    time.Time          // outgoing: when it was offered
	sentBefore int64              // outgoing: Sent by the attempts that ended
	cut        context.CancelFunc // outgoing: ends the attempt under way
	decided    chan struct{}      // incoming: closed on Accept or Decline
	accept     bool               // incoming: the decision
}

// NewService opens the download directory.
func NewService(cfg ServiceConfig) (*Service, error) {
	s := &Service{cfg: cfg, xfers: map[string]*xfer{}, subs: map[int]func(Transfer){}, incoming: map[*net.Conn]incomingStream{}}
	s.log = cfg.Log
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	rc := cfg.Receive
	rc.Decide = s.decide
	rc.Progress = s.incomingProgress
	if rc.Log == nil {
		rc.Log = s.log
	}
	if !cfg.SendOnly {
		r, err := NewReceiver(rc)
		if err != nil {
			return nil, err
		}
		s.rcv = r
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.loadOutbox(); err != nil {
		s.log.Warn("ignoring the kept outgoing offers", "err", err)
	}
	return s, nil
}

// Run tries outgoing transfers again every RetryEvery until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-t.C:
			s.retryAll()
		}
	}
}

// Retry tries every waiting outgoing transfer to peer now (its node
// came back, say).
func (s *Service) Retry(peer string) {
	s.mu.Lock()
	var ids []string
	for id, x := range s.xfers {
		if !x.t.Incoming && x.t.Peer == peer && x.t.State == StateWaiting {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.start(id)
	}
}

func (s *Service) retryAll() {
	s.mu.Lock()
	var ids []string
	for id, x := range s.xfers {
		if !x.t.Incoming && x.t.State == StateWaiting && !x.running {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.start(id)
	}
}

// Cut ends every stream with peer at once, both ways: its node was lost
// (an unplug, a crash), and a stream TCP would keep retrying for many
// seconds after it is back is better given up now. What verified is
// kept; the outgoing transfers wait, and resume on the next Retry (the
// peer is back) or retry tick, from what the recipient holds.
func (s *Service) Cut(peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.xfers {
		if !x.t.Incoming && x.t.Peer == peer && x.cut != nil {
			x.cut()
		}
	}
	for _, in := range s.incoming {
		if in.peer == peer {
			in.end()
		}
	}
}

// Close stops every transfer (what verified is kept for a resume) and
// waits for them. It is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	var err error
	if s.rcv != nil {
		err = s.rcv.Close()
	}
	s.wg.Wait()
	s.mu.Lock()
	for _, x := range s.xfers {
		if x.src != nil {
			x.src.Close()
		}
	}
	s.mu.Unlock()
	return err
}

// Subscribe calls fn with a transfer after every change of it (progress
// too, at most every ProgressEvery a transfer). fn must not block.
func (s *Service) Subscribe(fn func(Transfer)) (cancel func()) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.subs[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// Transfers lists every offer and transfer kept, oldest first.
func (s *Service) Transfers() []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transfer, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.xfers[id].copy())
	}
	return out
}

// Transfer returns one.
func (s *Service) Transfer(id string) (Transfer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.xfers[id]
	if x == nil {
		return Transfer{}, fmt.Errorf("%w: %s", ErrUnknownTransfer, id)
	}
	return x.copy(), nil
}

func (x *xfer) copy() Transfer {
	t := x.t
	t.Names = slices.Clone(t.Names)
	t.Skipped = slices.Clone(t.Skipped)
	return t
}

// update changes a transfer under the lock and tells the subscribers
// after releasing it.
func (s *Service) update(id string, f func(*xfer)) {
	s.mu.Lock()
	x := s.xfers[id]
	if x == nil {
		s.mu.Unlock()
		return
	}
	before := x.t.State
	f(x)
	x.t.Updated = time.Now()
	if !x.t.Incoming && before != x.t.State && (x.t.State == StateDone || x.t.State == StateFailed || x.t.State == StateDeclined) {
		s.saveOutboxLocked()
	}
	t := x.copy()
	subs := make([]func(Transfer), 0, len(s.subs))
	for _, fn := range s.subs {
		subs = append(subs, fn)
	}
	s.mu.Unlock()
	for _, fn := range subs {
		fn(t)
	}
}

// add registers a new transfer, dropping the oldest finished ones beyond
// MaxKept. Called with s.mu held.
func (s *Service) addLocked(x *xfer) {
	s.xfers[x.t.ID] = x
	s.order = append(s.order, x.t.ID)
	for len(s.order) > s.cfg.MaxKept {
		drop := -1
		for i, id := range s.order {
			st := s.xfers[id].t.State
			if st == StateDone || st == StateFailed || st == StateDeclined {
				drop = i
				break
			}
		}
		if drop < 0 {
			return
		}
		delete(s.xfers, s.order[drop])
		s.order = slices.Delete(s.order, drop, drop+1)
	}
}

// Offer sends paths to peer: it scans them, lists the transfer, and
// sends in the background, trying again after a cut or while the peer is
// away, until the recipient has everything, says no, or a failure is
// final. It returns at once with the transfer as listed.
//
// The same paths offered again to the same peer while an earlier offer of
// them is unfinished (kept from an earlier run, say) continue that one,
// under its transfer id, rather than make a second offer.
func (s *Service) Offer(peer string, paths []string) (Transfer, error) {
	if s.cfg.Dial == nil {
		return Transfer{}, errors.New("no way to reach peers")
	}
	if t, ok := s.unfinished(peer, paths); ok {
		s.start(t.ID)
		return t, nil
	}
	src, err := NewSource(paths, s.cfg.Receive.MaxEntries)
	if err != nil {
		return Transfer{}, err
	}
	for _, sk := range src.Skipped {
		s.log.Warn("not sent", "path", sk.Path, "reason", sk.Reason)
	}
	x := &xfer{src: src, paths: paths, created: time.Now(), t: Transfer{
		ID: transferKey(s.cfg.Self, src.ID), Peer: peer, Names: topNames(src.Entries),
		Files: src.Files(), Total: src.Total(), State: StateWaiting, Skipped: src.Skipped, Updated: time.Now(),
	}}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		src.Close()
		return Transfer{}, ErrClosed
	}
	s.addLocked(x)
	s.saveOutboxLocked()
	t := x.copy()
	s.mu.Unlock()
	s.start(t.ID)
	return t, nil
}

// unfinished finds an outgoing transfer of paths to peer still under way.
func (s *Service) unfinished(peer string, paths []string) (Transfer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.order {
		x := s.xfers[id]
		if !x.t.Incoming && x.t.Peer == peer && slices.Equal(x.paths, paths) &&
			(x.t.State == StateWaiting || x.t.State == StateActive) {
			return x.copy(), true
		}
	}
	return Transfer{}, false
}

func transferKey(sender string, id TransferID) string { return stagingKey(sender, id)[:16] }

func topNames(es []Entry) []string {
	var out []string
	for _, e := range es {
		top := e.Path
		for i := range len(top) {
			if top[i] == '/' {
				top = top[:i]
				break
			}
		}
		if !slices.Contains(out, top) {
			out = append(out, top)
		}
	}
	return out
}

// start runs one attempt of an outgoing transfer in the background,
// unless one is under way.
func (s *Service) start(id string) {
	s.mu.Lock()
	x := s.xfers[id]
	if x == nil || x.running || s.closed || x.t.State != StateWaiting {
		s.mu.Unlock()
		return
	}
	x.running = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.attempt(id, x)
	}()
}

// final reports failures that trying again cannot mend.
func final(err error) bool {
	for _, e := range []error{ErrDeclined, ErrRefused, ErrNoSpace, ErrWrite, ErrVerify, ErrSourceChanged, ErrSourceGone, ErrProtocol} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Service) attempt(id string, x *xfer) {
	ctx, cut := context.WithCancel(s.ctx)
	defer cut()
	s.mu.Lock()
	x.cut = cut
	s.mu.Unlock()
	defer s.update(id, func(x *xfer) { x.running, x.cut = false, nil })
	conn, err := s.cfg.Dial(ctx, x.t.Peer, ALPN)
	if err != nil {
		s.log.Debug("recipient not reachable; trying later", "transfer", id, "err", err)
		return
	}
	s.update(id, func(x *xfer) { x.t.State = StateActive })
	cfg := s.cfg.Send
	if cfg.Log == nil {
		cfg.Log = s.log
	}
	cfg.Progress = func(p Progress) {
		s.update(id, func(x *xfer) {
			x.t.setProgress(p)
			x.t.Sent = x.sentBefore + p.Sent
		})
	}
	res, err := Send(ctx, conn, x.src, cfg)
	s.update(id, func(x *xfer) {
		x.sentBefore += res.Sent
		x.t.Sent = x.sentBefore
		switch {
		case err == nil:
			x.t.State, x.t.Done, x.t.Error, x.t.FilesDone, x.t.Current = StateDone, x.t.Total, "", x.t.Files, ""
			x.src.Close()
		case errors.Is(err, ErrDeclined):
			x.t.State, x.t.Error = StateDeclined, err.Error()
			x.src.Close()
		case final(err):
			x.t.State, x.t.Error = StateFailed, err.Error()
			x.src.Close()
		default:
			// Cut, away, cancelled or not yet decided: try again.
			x.t.State, x.t.Error = StateWaiting, err.Error()
		}
	})
	if err != nil && !final(err) {
		s.log.Info("transfer interrupted; will resume", "transfer", id, "err", err)
	}
}

// HandleStream receives one incoming transfer; mesh calls it for every
// stream with ALPN, in a goroutine of its own.
func (s *Service) HandleStream(conn net.Conn, peer string) {
	s.mu.Lock()
	if s.closed || s.rcv == nil {
		s.mu.Unlock()
		conn.Close()
		return
	}
	ctx, end := context.WithCancel(s.ctx)
	defer end()
	s.incoming[&conn] = incomingStream{peer: peer, end: end}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.incoming, &conn)
		s.mu.Unlock()
	}()
	res, err := s.rcv.Serve(ctx, conn, peer)
	id := transferKey(peer, res.Offer.ID)
	s.update(id, func(x *xfer) {
		switch {
		case err == nil:
			x.t.State, x.t.Done, x.t.Error, x.t.FilesDone, x.t.Current = StateDone, x.t.Total, "", x.t.Files, ""
		case errors.Is(err, ErrDeclined):
			x.t.State, x.t.Error = StateDeclined, err.Error()
		case final(err):
			x.t.State, x.t.Error = StateFailed, err.Error()
		case x.t.State == StateActive:
			// Cut: the sender will resume. Listed as accepted and waiting.
			x.t.State, x.t.Error = StateWaiting, err.Error()
		}
	})
}

// decide is the Receiver's question about an offer: by policy, by an
// earlier decision on the same transfer, or by asking and waiting.
func (s *Service) decide(ctx context.Context, o Offer) error {
	id := transferKey(o.Peer, o.ID)
	auto := s.cfg.AcceptFrom != nil && s.cfg.AcceptFrom(o.Peer) &&
		(s.cfg.AcceptMaxSize == 0 || o.Total <= s.cfg.AcceptMaxSize)
	s.mu.Lock()
	x := s.xfers[id]
	if x == nil {
		pending, fromPeer := 0, 0
		for _, y := range s.xfers {
			if y.t.State == StateOffered {
				pending++
				if y.t.Peer == o.Peer {
					fromPeer++
				}
			}
		}
		// One peer cannot take every place: a stranger's flood of offers
		// leaves room for everyone else's.
		if !auto && (pending >= s.cfg.MaxPending || fromPeer >= max(1, s.cfg.MaxPending/8)) {
			s.mu.Unlock()
			return fmt.Errorf("%w: too many offers are waiting for a decision", ErrRefused)
		}
		x = &xfer{decided: make(chan struct{}), t: Transfer{
			ID: id, Incoming: true, Peer: o.Peer, Names: topNames(o.Entries), Files: o.Files,
			Total: o.Total, Done: o.Held, State: StateOffered, Updated: time.Now(),
		}}
		if auto {
			// Accepted by policy: never listed as waiting for a person.
			x.accept = true
			x.t.State = StateActive
			close(x.decided)
		}
		s.addLocked(x)
	} else if x.t.State != StateOffered {
		// A resume of a transfer already accepted (a cut), or a
		// re-offer of one declined.
		x.t.Total, x.t.Done, x.t.Files = o.Total, o.Held, o.Files
	} else if auto {
		// Still waiting, but the policy lets it in now (the sender's
		// name was not known on its first try, say).
		x.accept = true
		close(x.decided)
	}
	decided := x.decided
	s.mu.Unlock()
	s.update(id, func(*xfer) {}) // the offer, for the subscribers

	timer := time.NewTimer(s.cfg.DecideTimeout)
	defer timer.Stop()
	select {
	case <-decided:
	case <-timer.C:
		return fmt.Errorf("%w: no decision yet", ErrCancelled)
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	s.update(id, func(x *xfer) {
		if x.accept {
			x.t.State, x.t.Error = StateActive, ""
		} else {
			x.t.State, x.t.Error = StateDeclined, "declined"
			err = ErrDeclined
		}
	})
	return err
}

// Accept accepts an offer waiting for a decision. The sender is let in at
// once if its stream is waiting, else on its next try.
func (s *Service) Accept(id string) (Transfer, error) { return s.settle(id, true) }

// Decline declines an offer waiting for a decision.
func (s *Service) Decline(id string) (Transfer, error) { return s.settle(id, false) }

func (s *Service) settle(id string, accept bool) (Transfer, error) {
	s.mu.Lock()
	x := s.xfers[id]
	if x == nil || !x.t.Incoming {
		s.mu.Unlock()
		return Transfer{}, fmt.Errorf("%w: %s", ErrUnknownTransfer, id)
	}
	if x.t.State != StateOffered {
		s.mu.Unlock()
		return x.copy(), fmt.Errorf("%w: it is %s", ErrNotPending, x.t.State)
	}
	x.accept = accept
	close(x.decided)
	if accept {
		x.t.State = StateActive
	} else {
		x.t.State, x.t.Error = StateDeclined, "declined"
	}
	s.mu.Unlock()
	s.update(id, func(*xfer) {})
	return s.Transfer(id)
}

func (s *Service) incomingProgress(o *Offer, p Progress) {
	s.update(transferKey(o.Peer, o.ID), func(x *xfer) { x.t.setProgress(p) })
}

// setProgress takes an engine's progress in, counting the current file's
// bytes from where Done stood when it began.
func (t *Transfer) setProgress(p Progress) {
	if p.Current != t.Current {
		t.curStart = t.Done
	}
	t.Done, t.Total, t.FilesDone, t.Current, t.CurrentSize = p.Done, p.Total, p.FilesDone, p.Current, p.CurrentSize
	t.CurrentDone = min(max(0, t.Done-t.curStart), t.CurrentSize)
}
