package chat

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"lanchat/internal/ratelimit"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// Presence tells the service who is online. *mesh.Mesh fits.
type Presence interface {
	// Peers lists every peer known now.
	Peers() []mesh.Peer
	// Peer returns one peer, if known.
	Peer(id string) (mesh.Peer, bool)
}

// Transport sends sealed envelopes to one peer, in order, and reports
// each one's acknowledgement; *message.Service fits. written is called
// once, when every frame has been handed to the stream (true) or sending
// failed before that (false).
type Transport interface {
	SendBatch(ctx context.Context, to string, items []message.Queued, written func(sent bool)) []error
}

// Config configures a Service.
type Config struct {
	// Store is the history; the Service does not close it.
	Store *store.Store
	// Self is our peer id; Key our identity key, which signs what we write.
	Self string
	Key  ed25519.PrivateKey
	// Name returns our current display name.
	Name func() string
	// Clock stamps what we write; nil makes one on time.Now.
	Clock *message.Clock
	// Presence says who is online; nil means nobody is.
	Presence Presence
	// Transport sends; nil means nothing is sent now, and every message
	// waits in the outbox for a node that can send it.
	Transport Transport
	// RoomSync fetches rooms' events from members (catch-up); nil
	// means rooms are only what arrives on direct streams.
	RoomSync RoomSync
	// RoomPullTimeout bounds one catch-up pull from one peer, so that a
	// peer that answers slowly for ever cannot keep a pull slot; what is
	// left is fetched by the next pull. 0 means DefaultRoomPullTimeout.
	RoomPullTimeout time.Duration
	// NoGeneral: do not join GeneralRoom at first start (tests).
	NoGeneral bool
	// ContactsPath is the contact book's file; "" keeps it in memory.
	ContactsPath string
	// PeerRate and PeerBurst bound how many messages (receipts included)
	// one peer may deliver to us a second: a token bucket; 0 means the
	// default, negative means no limit.
	PeerRate  float64
	PeerBurst float64
	// Publish receives the service's events (MessageEvent, ReceiptEvent)
	// in order; it must not block. Nil drops them.
	Publish func(Event)
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Now is the service's wall clock: the limiter's, and the one rooms'
	// retention cutoffs are measured on; nil means time.Now. Tests that
	// age a room hand in the same clock as Clock's.
	Now func() time.Time
	// MinRetention is the shortest retention a room may have, on what we
	// set and what we accept; 0 means DefaultMinRetention. Every member
	// of a room should use the same (tests shorten it).
	MinRetention time.Duration
	// PruneEvery is how often rooms with a retention are pruned; 0
	// means every minute.
	PruneEvery time.Duration
}

// Default allowance per peer: far above what people type or scripts
// usually send, low enough that one peer cannot take all of a node.
const (
	DefaultPeerRate  = 5000
	DefaultPeerBurst = 50000

	DefaultRoomPullTimeout = 2 * time.Minute
)

// Errors callers act on.
var (
	ErrInvalidText = errors.New("invalid message text")
	ErrClosed      = errors.New("chat service closed")
	errRateLimited = errors.New("too many messages: slow down")
)

// PeerRef names a peer as best this service knows.
type PeerRef struct {
	ID    string
	Name  string
	Trust Trust // what this node makes of Name on ID
}

// Event is what the service reports: MessageEvent, ReceiptEvent,
// TypingEvent, and the rooms' events.
type Event interface{ chatEvent() }

// MessageEvent is a message received, or with Outgoing one we sent.
type MessageEvent struct {
	ID       string
	From, To PeerRef // To is the room, for a room message
	Text     string
	Time     time.Time
	Outgoing bool
	Room     string   // set for a room message
	Mentions []string // peer ids the text names with @
	// ClaimedTime is the author's time when it was too far ahead of ours
	// to keep (Time is then the arrival); zero otherwise.
	ClaimedTime time.Time
}

// ReceiptEvent is a step of a message we sent: queued, delivered (the
// recipient's node stored it) or read (a person saw it).
type ReceiptEvent struct {
	ID    string
	State store.State
	Peer  PeerRef
}

func (MessageEvent) chatEvent() {}
func (ReceiptEvent) chatEvent() {}

// Service is the chat domain over one history. New starts nothing; Run
// serves the outbox until its context ends; Close stops it and waits.
type Service struct {
	cfg      Config
	log      *slog.Logger
	st       *store.Store
	clock    *message.Clock
	limiter  *limiter
	contacts *contacts
	watch    watchers
	out      *outbox
	rooms    *rooms
	quota    *quota

	typingOut, typingIn *ratelimit.Keyed[string] // typing indicators sent and published, per peer
	typingRoomIn        *ratelimit.Keyed[string] // rooms' typing indicators published, per author

	ctx    context.Context // ends when the service stops; parent of every delivery
	cancel context.CancelFunc

	mu      sync.Mutex // guards running and stopped
	running bool
	stopped chan struct{} // closed when Run has returned (or Close ran without Run)
	once    sync.Once
}

// New checks cfg and builds the service; it starts nothing. A contact
// book that cannot be read is logged and started afresh.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Self == "" || len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("chat: a store, an id and a key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == nil {
		cfg.Name = func() string { return "" }
	}
	if cfg.Clock == nil {
		cfg.Clock = message.NewClock(time.Now)
	}
	if cfg.Publish == nil {
		cfg.Publish = func(Event) {}
	}
	if cfg.Presence == nil {
		cfg.Presence = nobody{}
	}
	if cfg.MinRetention <= 0 {
		cfg.MinRetention = DefaultMinRetention
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = pruneEvery
	}
	if cfg.RoomPullTimeout <= 0 {
		cfg.RoomPullTimeout = DefaultRoomPullTimeout
	}
	rate, burst := cfg.PeerRate, cfg.PeerBurst
	if rate == 0 {
		rate = DefaultPeerRate
	}
	if burst <= 0 {
		burst = max(DefaultPeerBurst, rate)
	}
	cts, err := loadContacts(cfg.ContactsPath)
	if err != nil {
		cfg.Logger.Warn("ignoring unreadable contacts", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, log: cfg.Logger, st: cfg.Store, clock: cfg.Clock,
		limiter:  newLimiter(rate, burst, cfg.Now),
		contacts: cts,
		watch:    watchers{byID: map[string]*deliveryWatch{}},
		ctx:      ctx,
		cancel:   cancel,
		stopped:  make(chan struct{}),
	}
	s.typingOut, s.typingIn, s.typingRoomIn = newTypingLimits(cfg.Now)
	s.out = newOutbox(s)
	s.rooms = newRooms(s)
	s.quota = newQuota(s)
	return s, nil
}

// now reads the service's wall clock.
func (s *Service) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

type nobody struct{}

func (nobody) Peers() []mesh.Peer            { return nil }
func (nobody) Peer(string) (mesh.Peer, bool) { return mesh.Peer{}, false }
func (s *Service) online(id string) (mesh.Peer, bool) {
	p, ok := s.cfg.Presence.Peer(id)
	return p, ok && p.Online() && s.cfg.Transport != nil
}

// Run delivers the outbox, records its progress and keeps the contact
// book on disk until ctx ends or Close is called; then it waits for
// every delivery under way, records what they achieved and saves the
// contacts. A second Run returns an error.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running || s.ctx.Err() != nil {
		s.mu.Unlock()
		return errors.New("chat: Run called twice or after Close")
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.stopped)
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()

	var wg sync.WaitGroup
	wg.Add(5)
	go func() {
		defer wg.Done()
		s.quota.loadTotals(s.ctx)
	}()
	go func() {
		defer wg.Done()
		s.rooms.pruneAll(s.ctx)
	}()
	go func() {
		defer wg.Done()
		s.saveContacts(s.ctx)
	}()
	go func() {
		defer wg.Done()
		s.expireReceipts(s.ctx)
	}()
	go func() {
		defer wg.Done()
		if !s.cfg.NoGeneral {
			if err := s.rooms.joinGeneral(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("join "+GeneralRoom, "err", err)
			}
		}
		s.rooms.antiEntropy(s.ctx)
	}()
	s.out.run(s.ctx) // returns once every session and record is done
	wg.Wait()
	s.rooms.stop()
	if err := s.contacts.save(); err != nil {
		s.log.Warn("save contacts", "err", err)
	}
	return nil
}

// Close stops the service and waits for Run to return. It is idempotent.
func (s *Service) Close() error {
	s.cancel()
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if running {
		<-s.stopped
	} else {
		s.once.Do(func() {
			s.rooms.stop()
			s.out.drain()
			if err := s.contacts.save(); err != nil {
				s.log.Warn("save contacts", "err", err)
			}
		})
	}
	return nil
}

func (s *Service) saveContacts(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return // Run saves what is left
		case <-s.contacts.urgent:
		case <-s.contacts.changed:
			// A last-seen update can wait: the next few seconds'
			// sightings (a whole office at start) go in one write.
			t := time.NewTimer(contactsSaveDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-s.contacts.urgent:
				t.Stop()
			}
		}
		if err := s.contacts.save(); err != nil {
			s.log.Warn("save contacts", "err", err)
			// Written at the next change, or at exit: the book is
			// still dirty, and a full disk is not retried in a loop.
		}
	}
}

// contactsSaveDelay is how long a change that is not urgent waits for
// others before the book is written.
const contactsSaveDelay = 5 * time.Second

// Saw records a peer's name as of now (from presence, or a directory),
// so that a person can address them by name after they go offline. A
// peer whose key a handshake proved (p.Verified) may be pinned for its
// name (see Trust).
func (s *Service) Saw(p mesh.Peer) {
	if p.Verified {
		s.contacts.sawVerified(p.ID, p.Name)
	} else {
		s.contacts.saw(p.ID, p.Name)
	}
}

// PeerOnline tells the service a peer has appeared: what waits for them
// goes out now rather than at the next retry.
func (s *Service) PeerOnline(id string) { s.out.kick(id) }

// CheckText refuses what cannot be sent: empty text, invalid UTF-8, or
// more than message.MaxText bytes.
func CheckText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return fmt.Errorf("%w: empty message", ErrInvalidText)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidText)
	case len(text) > message.MaxText:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidText, len(text), message.MaxText)
	}
	return nil
}

// Self names us.
func (s *Service) Self() PeerRef {
	return PeerRef{ID: s.cfg.Self, Name: s.cfg.Name(), Trust: Trust{Trusted: true}}
}

// PeerRef names a peer as best this service knows: what presence says,
// else the contact book, else a short id.
func (s *Service) PeerRef(id string) PeerRef {
	if id == s.cfg.Self {
		return s.Self()
	}
	if p, ok := s.cfg.Presence.Peer(id); ok && mesh.ValidName(p.Name) == nil {
		return s.ref(id, p.Name)
	}
	if name, ok := s.contacts.name(id); ok {
		return s.ref(id, name)
	}
	return s.ref(id, mesh.ShortID(id))
}

// Known is everyone a message could be addressed to: the peers presence
// knows now and the contacts remembered from earlier, ourselves left out.
func (s *Service) Known() []mesh.Peer {
	live := s.cfg.Presence.Peers()
	seen := make(map[string]bool, len(live))
	out := make([]mesh.Peer, 0, len(live))
	for _, p := range live {
		if p.ID != s.cfg.Self {
			seen[p.ID] = true
			out = append(out, p)
		}
	}
	for _, c := range s.contacts.list() {
		if !seen[c.ID] && c.ID != s.cfg.Self {
			out = append(out, mesh.Peer{ID: c.ID, Name: c.Name, State: mesh.Offline, LastSeen: c.LastSeen})
		}
	}
	return out
}

// Resolve finds the peer a person means (see Resolve) among Known,
// trusting pinned contacts over other claims to their names.
func (s *Service) Resolve(q string) (mesh.Peer, error) {
	return resolve(strings.TrimSpace(q), s.Known(), s.TrustOf)
}

func (s *Service) seal(to, kind, body string) (*message.Envelope, error) {
	env := &message.Envelope{
		Author: s.cfg.Self, AuthorName: s.cfg.Name(), To: to, Time: s.clock.Now(), Kind: kind, Body: body,
	}
	if _, err := message.Seal(env, s.cfg.Key); err != nil {
		return nil, err
	}
	return env, nil
}

// queue seals a message and stores it in the outbox. Once it returns the
// message survives a crash of this process.
func (s *Service) queue(ctx context.Context, to, kind, body string) (*message.Envelope, error) {
	env, err := s.seal(to, kind, body)
	if err != nil {
		return nil, err
	}
	if err := s.st.AddOutgoing(ctx, env); err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	return env, nil
}
