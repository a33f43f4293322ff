package mesh

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/event"
	"lanchat/internal/netkey"
)

// Errors callers act on.
var (
	ErrPeerOffline = errors.New("peer is offline")
	ErrUnknownPeer = errors.New("unknown peer")
	ErrClosed      = errors.New("mesh closed")
)

// Config configures a Mesh. DefaultConfig fills in everything but the
// identity, name and addresses.
type Config struct {
	// Identity is this node's key; its id is the peer id.
	Identity *Identity
	// Name is the display name others see.
	Name string
	// State and Status are the presence announced at start.
	State  State
	Status string
	// BindAddr is the address the gossip and TLS listeners bind.
	BindAddr netip.Addr
	// AdvertiseAddr is the address other peers are told to use; it must
	// be reachable by them (never loopback on a real LAN).
	AdvertiseAddr netip.Addr
	// Addrs are every LAN address of this node with its prefix and
	// interface, best first: listed in the signed
	// metadata, and used to pick which of a peer's addresses to reach it
	// on (lan.go). Empty: AdvertiseAddr alone. SetAddrs changes them.
	Addrs []IfaceAddr
	// GossipPort and TLSPort are the preferred ports; 0 means any.
	GossipPort int
	TLSPort    int
	// PortFallback uses a free port when a preferred one is taken, so
	// several nodes can share a machine.
	PortFallback bool
	// Join lists host:port gossip addresses of peers to join at start and
	// to retry while none of them is reachable: seeds for a network that
	// multicast DNS does not reach.
	Join []string
	// Known lists verified peers' addresses remembered from an earlier
	// run (KnownAddrs), dialled at start like peers lost when last seen.
	Known []KnownAddr
	// ReconnectHorizon is how long a peer lost without a goodbye is still
	// dialled (with backoff, see reconnector); then it is forgotten, as
	// Serf forgets failed members after its ReconnectTimeout. These dials
	// are what re-merge a healed network split: memberlist alone does not.
	ReconnectHorizon time.Duration
	// ReconnectInterval is the least time between two reconnect dials of
	// this node, however many peers are lost.
	ReconnectInterval time.Duration
	// LeaveTimeout bounds how long a clean exit waits for its goodbye to go out.
	LeaveTimeout time.Duration
	// MaxPeers caps the peers this node keeps (the peer table, and the
	// members gossip may bring): when it is full, an offline peer never
	// verified is forgotten to make room, else a new one is refused.
	MaxPeers int
	// MaxUnverified caps the live members whose key no handshake has
	// proved yet. Each is probed by memberlist, so a flood of forged
	// members would otherwise dilute failure detection.
	MaxUnverified int
	// MaxPerAddr caps the live members at one IP address.
	MaxPerAddr int
	// DialsPerAddr and DialBurst bound how often this node dials one IP
	// address that gossip or discovery named (verification, reconnects,
	// joins), so that nobody can aim it at a third party.
	DialsPerAddr float64
	DialBurst    int
	// Tune, if set, adjusts the memberlist configuration after the
	// defaults are applied (tests shrink timers with it).
	Tune func(*memberlist.Config)
	// Network, when not empty, makes the network closed: only nodes
	// holding one of these keys gossip or stream with this one (see
	// network.go). The first key is the one spoken.
	Network netkey.Ring
	// Logger receives the mesh's and memberlist's logs; nil discards
	// them, as in every lanchat library.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration for a LAN.
func DefaultConfig() Config {
	return Config{
		GossipPort:        DefaultGossipPort,
		TLSPort:           DefaultTLSPort,
		PortFallback:      true,
		ReconnectHorizon:  72 * time.Hour,
		ReconnectInterval: time.Second,
		LeaveTimeout:      2 * time.Second,
		MaxPeers:          1024,
		MaxUnverified:     64,
		MaxPerAddr:        8,
		DialsPerAddr:      2,
		DialBurst:         8,
	}
}

// Default ports. They avoid 7946, which Serf and Consul use.
const (
	DefaultGossipPort = 7480
	DefaultTLSPort    = 7481
)

// Change says what happened to a peer in an Event.
type Change string

// The kinds of Event.
const (
	Joined   Change = "joined"   // first seen since this node started
	Returned Change = "returned" // back after being lost or leaving, or restarted
	Updated  Change = "status"   // name, state, status text or address changed
	Lost     Change = "lost"     // gone without a goodbye (crash, unplug)
	Departed Change = "left"     // said goodbye
	// Unreachable: the peer is online (other members' gossip vouches for
	// it) but this node's own probes and handshake do not reach it: a
	// partition, a firewall between two hosts. Reachable: it is reached
	// again. Neither changes State.
	Unreachable Change = "unreachable"
	Reachable   Change = "reachable"
	// Verified: a handshake proved that the peer's address holds its key.
	// It comes once per run of the peer, after the Joined or Returned of
	// that run, and again only after the peer became unverified (a new
	// run, or an Updated with a new address).
	Verified Change = "verified"
)

// Event is a change in the membership as this node sees it. Peer is the
// peer as it was right after the change.
type Event struct {
	Change Change
	Peer   Peer
}

// Peer is one person on the network as this node knows them. A peer that
// restarts is the same Peer: entries are keyed by peer id, not by run.
type Peer struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	State      State      `json:"state"`
	Status     string     `json:"status_text"`
	Addr       netip.Addr `json:"addr"`
	GossipPort uint16     `json:"gossip_port"`
	TLSPort    uint16     `json:"port"`
	Verified   bool       `json:"verified"`
	LastSeen   time.Time  `json:"last_seen"`
	Started    int64      `json:"started"`
	// Reachable: online and reached by this node. An online peer that is
	// not is one others see and this node cannot reach (Unreachable);
	// SeenBy is then how many other online members keep it alive.
	// Neither is on the wire (directory replies): what one node reaches
	// says nothing of what the asker reaches.
	Reachable bool `json:"-"`
	SeenBy    int  `json:"-"`
}

// Online reports whether the peer is reachable now.
func (p Peer) Online() bool { return p.State <= Busy }

// MarshalText makes states read as words in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads any of the five state words.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if string(b) == n {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown state %q", b)
}

// Mesh is this node's membership in the network: who is there, in what
// state, and secure streams to them.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	id     string
	member string // our memberlist node name: id-nonce
	cert   tls.Certificate
	dialer *Dialer
	q      *eventQueue           // news for the peer table, applied in order by processEvents
	gate   *gate                 // which members memberlist may take in
	dials  *addrLimiter          // dials to addresses others named, per IP
	subs   event.Registry[Event] // membership events, published from processEvents

	bcast         *memberlist.TransmitLimitedQueue // our gossip messages (leave intents)
	members       atomic.Int32                     // live members including us, for bcast; copied from table.live
	joinCh        chan string                      // gossip addresses to join, fed by AddCandidate
	verifyCh      chan string                      // peer ids whose key should be checked
	reconnectWake chan struct{}                    // buffered 1: the reconnect schedule changed
	checkWake     chan struct{}                    // buffered 1: a verified run is to be asked (hold.go)
	refuteWake    chan struct{}                    // buffered 1: memberlist refuted an accusation (hold.go)
	acks          ackTimes                         // direct probe acks, for reachability (reach.go)
	dirs          dirGate                          // directory replies being written
	routes        *routes                          // this node's addresses, and the one picked for each peer run (lan.go)
	doc           doctorState                      // dial-backs served, mDNS sightings (dialback.go)
	done          chan struct{}                    // closed by Close
	wg            sync.WaitGroup                   // accepted connections
	once          sync.Once                        // makes Close idempotent

	mu        sync.Mutex // guards the fields below
	meta      Meta
	metaBytes []byte               // meta signed; nil until signedMeta signs it after a change
	mlConf    *memberlist.Config   // memberlist's, for the gossip port it advertises
	table     peerTable            // read by anyone under mu; changed only by processEvents (and verify retries)
	recon     *reconnector         // lost peers to dial again; fed by processEvents, run by reconnectLoop
	known     map[string]KnownAddr // verified peers' last verified addresses, by id (known.go)
	handlers  map[string]func(*Stream)
	ml        *memberlist.Memberlist
	ln        net.Listener
	closed    bool
	conns     map[net.Conn]struct{}
}

// New checks cfg and prepares a mesh. It starts nothing.
func New(cfg Config) (*Mesh, error) {
	if cfg.Identity == nil {
		return nil, errors.New("mesh: no identity")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReconnectHorizon <= 0 {
		cfg.ReconnectHorizon = DefaultConfig().ReconnectHorizon
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = DefaultConfig().ReconnectInterval
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = DefaultConfig().LeaveTimeout
	}
	def := DefaultConfig()
	for _, f := range []struct {
		v *int
		d int
	}{{&cfg.MaxPeers, def.MaxPeers}, {&cfg.MaxUnverified, def.MaxUnverified}, {&cfg.MaxPerAddr, def.MaxPerAddr}, {&cfg.DialBurst, def.DialBurst}} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	if cfg.DialsPerAddr <= 0 {
		cfg.DialsPerAddr = def.DialsPerAddr
	}
	if !cfg.AdvertiseAddr.IsValid() {
		return nil, errors.New("mesh: no advertise address")
	}
	if !cfg.BindAddr.IsValid() {
		cfg.BindAddr = cfg.AdvertiseAddr
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	cert, err := selfSignedCert(cfg.Identity)
	if err != nil {
		return nil, fmt.Errorf("make certificate: %w", err)
	}
	m := &Mesh{
		cfg:           cfg,
		log:           cfg.Logger,
		id:            cfg.Identity.ID,
		member:        cfg.Identity.ID + "-" + hex.EncodeToString(nonce[:]),
		cert:          cert,
		dialer:        &Dialer{cert: cert, network: cfg.Network},
		q:             newEventQueue(),
		table:         newPeerTable(cfg.Identity.ID),
		handlers:      make(map[string]func(*Stream)),
		conns:         make(map[net.Conn]struct{}),
		known:         make(map[string]KnownAddr),
		joinCh:        make(chan string, 256),
		verifyCh:      make(chan string, 256),
		reconnectWake: make(chan struct{}, 1),
		checkWake:     make(chan struct{}, 1),
		refuteWake:    make(chan struct{}, 1),
		recon: newReconnector(reconnectConfig{
			base: reconnectBaseDelay, maxDelay: reconnectMaxDelay, gap: cfg.ReconnectInterval,
			horizon: cfg.ReconnectHorizon, maxInFlight: reconnectInFlight,
		}, mathrand.Float64),
		done:   make(chan struct{}),
		routes: newRoutes(cfg.Addrs),
	}
	m.table.pick = func(gossip netip.Addr, listed []netip.Addr) netip.Addr {
		return m.routes.ownAddrs().pick(gossip, listed, m.routes.zone)
	}
	m.gate = newGate(m.member, m.id, gateLimits{maxPeers: cfg.MaxPeers, maxUnverified: cfg.MaxUnverified, maxPerAddr: cfg.MaxPerAddr}, m.q)
	m.dials = newAddrLimiter(cfg.DialsPerAddr, cfg.DialBurst)
	m.members.Store(1)
	m.bcast = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(m.members.Load()) },
		RetransmitMult: 3,
	}
	m.meta = Meta{Proto: ProtocolVersion, Started: time.Now().UnixMilli(), Seq: 1, State: cfg.State, Name: cfg.Name, Status: cfg.Status}
	if err := validPresence(m.meta); err != nil {
		return nil, err
	}
	m.handlers[ALPNPing] = func(s *Stream) {}
	m.handlers[ALPNDirectory] = m.serveDirectory
	m.handlers[ALPNDoctor] = m.serveDoctor
	return m, nil
}

// ID is this node's peer id.
func (m *Mesh) ID() string { return m.id }

// Dialer returns the dialer that presents this node's identity.
func (m *Mesh) Dialer() *Dialer { return m.dialer }

// Run joins the network and keeps this node's view of it up to date until
// ctx ends; then it says goodbye, so others show this node as left rather
// than lost, and shuts down. Listen must have succeeded.
func (m *Mesh) Run(ctx context.Context) error {
	m.mu.Lock()
	ml, ln := m.ml, m.ln
	m.mu.Unlock()
	if ml == nil {
		return errors.New("mesh: Run before Listen")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	loops := []func(context.Context){
		m.processEvents,
		m.reconnectLoop,
		m.verifyLoop,
		m.holdLoop,
		m.reachLoop,
		func(ctx context.Context) { m.acceptLoop(ctx, ln) },
	}
	for range joinWorkers {
		loops = append(loops, m.joinWorker)
	}
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	m.mu.Lock()
	m.dialKnown(time.Now())
	m.mu.Unlock()
	m.wakeReconnect()
	if len(m.cfg.Join) > 0 {
		for _, a := range m.cfg.Join {
			m.enqueueJoin(a)
		}
	}
	<-ctx.Done()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if !closed {
		m.sayGoodbye(ml)
	}
	m.Close()
	wg.Wait()
	return nil
}

// Close stops the mesh without a goodbye if Run is not running it, and
// closes every stream it accepted. It is idempotent.
func (m *Mesh) Close() error {
	m.once.Do(func() {
		// closed before done: Run, woken by done, must not say goodbye
		// through a memberlist being shut down (Leave after Shutdown panics).
		m.mu.Lock()
		m.closed = true
		ml, ln := m.ml, m.ln
		m.mu.Unlock()
		close(m.done)
		if ln != nil {
			ln.Close()
		}
		if ml != nil {
			ml.Shutdown()
		}
		m.closeConns()
		m.q.close()
	})
	m.wg.Wait()
	return nil
}

// SetPresence changes the state and status text others see.
func (m *Mesh) SetPresence(state State, status string) error {
	return m.updateMeta(func(mt *Meta) { mt.State, mt.Status = state, status })
}

// SetName changes the display name others see.
func (m *Mesh) SetName(name string) error {
	return m.updateMeta(func(mt *Meta) { mt.Name = name })
}

func (m *Mesh) updateMeta(f func(*Meta)) error {
	m.mu.Lock()
	next := m.meta
	f(&next)
	next.Seq++
	if err := validPresence(next); err != nil {
		m.mu.Unlock()
		return err
	}
	m.meta, m.metaBytes = next, nil
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	return ml.UpdateNode(m.cfg.LeaveTimeout)
}

// SetAddrs replaces this node's LAN addresses (an interface came or went,
// DHCP gave a new lease) and tells the network: the signed metadata lists
// them from now on. memberlist's own address stays that of the start.
func (m *Mesh) SetAddrs(addrs []IfaceAddr) error {
	m.routes.setOwn(addrs)
	err := m.updateMeta(func(*Meta) {})
	m.mu.Lock()
	ml := m.ml
	m.mu.Unlock()
	if ml != nil {
		// Each peer's address is picked again from what memberlist holds
		// (a LAN this node just joined may reach one it could not): the
		// table takes the same metadata again, and only a new pick shows.
		for _, n := range ml.Members() {
			if n.Name != m.member {
				m.q.push(copyNode(evUpdate, n))
			}
		}
	}
	return err
}

// validPresence checks what a user may set, before it is signed.
func validPresence(m Meta) error {
	if err := ValidName(m.Name); err != nil {
		return err
	}
	if err := ValidStatus(m.Status); err != nil {
		return err
	}
	if m.State > Busy {
		return fmt.Errorf("%w: state %v cannot be announced", ErrMeta, m.State)
	}
	return nil
}

// Self describes this node as others see it.
func (m *Mesh) Self() Peer {
	m.mu.Lock()
	p := Peer{
		ID: m.id, Name: m.meta.Name, State: m.meta.State, Status: m.meta.Status, Reachable: true,
		Addr: m.cfg.AdvertiseAddr, TLSPort: m.meta.TLSPort, Verified: true,
		LastSeen: time.Now(), Started: m.meta.Started, GossipPort: m.gossipPort(),
	}
	m.mu.Unlock()
	return p
}

// Peers lists every peer seen since start, this node excluded, by name.
func (m *Mesh) Peers() []Peer {
	m.mu.Lock()
	now := time.Now()
	out := make([]Peer, 0, len(m.table.peers))
	for _, e := range m.table.peers {
		p := e.Peer
		if e.alive {
			// memberlist's failure detector vouches for it as of its last probe round
			p.LastSeen = now
		}
		m.table.reachable(&p)
		out = append(out, p)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// LiveCount is how many peers memberlist counts as live now, this node
// excluded. It is cheap (discovery asks it every second).
func (m *Mesh) LiveCount() int { return int(m.members.Load()) - 1 }

// Peer returns what is known of one peer.
func (m *Mesh) Peer(id string) (Peer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.table.peers[id]
	if !ok {
		return Peer{}, false
	}
	p := e.Peer
	m.table.reachable(&p)
	return p, true
}

// Subscribe calls fn for every membership event, in order, from one
// goroutine; fn must not block. The returned func cancels.
func (m *Mesh) Subscribe(fn func(Event)) (cancel func()) { return m.subs.Subscribe(fn) }

// Dial opens a secure stream to a live peer, checking its key. A stream
// opened verifies the peer, as verifyLoop's ping would; Peer and the
// Verified event show it soon after Dial returns, in order with the
// membership events.
func (m *Mesh) Dial(ctx context.Context, peerID, proto string) (*Stream, error) {
	m.mu.Lock()
	e := m.table.peers[peerID]
	var (
		member string
		addr   netip.AddrPort
		alive  bool
	)
	if e != nil {
		member, addr, alive = e.member, netip.AddrPortFrom(e.Addr, e.TLSPort), e.alive
	}
	m.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, ShortID(peerID))
	}
	if !alive {
		return nil, fmt.Errorf("%w: %s", ErrPeerOffline, ShortID(peerID))
	}
	s, err := m.dialer.DialAddr(ctx, addr.String(), peerID, proto)
	if err != nil {
		return nil, err
	}
	m.reportVerified(member, addr)
	return s, nil
}

// processEvents applies the queued news, in order, to the peer table and
// tells subscribers. It runs outside memberlist's locks, and publishes
// outside mu, so a subscriber may call back into the mesh.
func (m *Mesh) processEvents(ctx context.Context) {
	for {
		ev, ok := m.q.pop()
		if !ok {
			return
		}
		m.mu.Lock()
		now := time.Now()
		r := m.table.apply(ev, now)
		m.members.Store(int32(m.table.live))
		if id, ok := splitMember(ev.name); ok && (ev.kind == evJoin || ev.kind == evUpdate || ev.kind == evMeta) {
			if e := m.table.peers[id]; e != nil && e.member == ev.name {
				m.routes.setRun(e.member, e.Addr)
			}
		}
		if len(r.forgot) > 0 {
			keep := make(map[string]bool, len(m.table.peers))
			for _, e := range m.table.peers {
				keep[e.member] = true
			}
			m.routes.keepRuns(keep)
		}
		if r.event != nil {
			m.scheduleReconnect(*r.event, now)
			m.remember(r.event.Peer, now)
			if ch := r.event.Change; ch != Unreachable && ch != Reachable {
				m.table.reachable(&r.event.Peer)
			}
		}
		if r.held != "" {
			// memberlist keeps the run dead until it forgets it
			// (GossipToTheDeadTime); the reconnect dials then join it back.
			if e := m.table.peers[r.held]; e != nil {
				m.recon.lost(e.ID, netip.AddrPortFrom(e.Addr, e.GossipPort).String(), netip.AddrPortFrom(e.Addr, e.TLSPort), now)
			}
		}
		if r.unheld != "" && (r.event == nil || r.event.Change != Lost) {
			m.recon.found(r.unheld)
		}
		for _, id := range r.forgot {
			m.recon.found(id)
		}
		m.mu.Unlock()
		if r.event != nil && r.event.Peer.Verified {
			// Verified, or back on a run verified before (the gate may
			// have forgotten that run meanwhile): not a stranger.
			m.gate.verified(ev.name)
		}
		if r.refused != nil {
			m.log.Warn("ignoring a peer's news", "member", ev.name, "err", r.refused)
		}
		if r.relay != "" {
			m.bcast.QueueBroadcast(leaveBroadcast{member: r.relay, msg: ev.meta})
		}
		if r.check != "" {
			m.queueCheck(r.check)
		}
		if r.held != "" {
			m.wakeReconnect()
		}
		if r.verify != "" {
			m.queueVerify(r.verify)
		}
		if r.event != nil {
			m.subs.Publish(*r.event)
			if r.event.Change == Lost {
				m.wakeReconnect()
			}
		}
	}
}

// scheduleReconnect tells the reconnector of a change. Called with mu held.
func (m *Mesh) scheduleReconnect(ev Event, now time.Time) {
	p := ev.Peer
	switch ev.Change {
	case Lost:
		if e := m.table.peers[p.ID]; e == nil || !e.everVerified {
			// Never proven to be anyone: its address is a stranger's
			// word, not worth dialling for days. Discovery and the
			// others' gossip bring an honest one back.
			return
		}
		m.recon.lost(p.ID, netip.AddrPortFrom(p.Addr, p.GossipPort).String(), netip.AddrPortFrom(p.Addr, p.TLSPort), now)
	case Joined, Returned, Departed:
		m.recon.found(p.ID)
	}
}
