package mesh

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/event"
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
	// GossipPort and TLSPort are the preferred ports; 0 means any.
	GossipPort int
	TLSPort    int
	// PortFallback uses a free port when a preferred one is taken, so
	// several nodes can share a machine.
	PortFallback bool
	// Join lists host:port gossip addresses of peers to join at start and
	// to retry while none of them is reachable (--join).
	Join []string
	// RejoinInterval is how often peers that were lost without a goodbye,
	// and the Join seeds while none is alive, are dialled again. This is
	// what re-merges a healed network split: memberlist alone does not.
	RejoinInterval time.Duration
	// LeaveTimeout bounds how long a clean exit waits for its goodbye to go out.
	LeaveTimeout time.Duration
	// Tune, if set, adjusts the memberlist configuration after the
	// defaults are applied (tests shrink timers with it).
	Tune func(*memberlist.Config)
	// Logger receives the mesh's and memberlist's logs.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration for a LAN.
func DefaultConfig() Config {
	return Config{
		GossipPort:     DefaultGossipPort,
		TLSPort:        DefaultTLSPort,
		PortFallback:   true,
		RejoinInterval: 5 * time.Second,
		LeaveTimeout:   2 * time.Second,
		Logger:         slog.Default(),
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
	Updated  Change = "status"   // name, state or status text changed
	Lost     Change = "lost"     // gone without a goodbye (crash, unplug)
	Departed Change = "left"     // said goodbye
)

// Event is a change in the membership as this node sees it.
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
	q      *eventQueue
	subs   event.Registry[Event] // membership events, published from processEvents

	mu        sync.Mutex // guards the fields below
	meta      Meta
	metaBytes []byte
	peers     map[string]*entry
	handlers  map[string]func(*Stream)
	ml        *memberlist.Memberlist
	ln        net.Listener
	closed    bool
	conns     map[net.Conn]struct{}

	bcast    *memberlist.TransmitLimitedQueue // our gossip messages (leave intents)
	members  atomic.Int32                     // live members including us, for bcast
	leaving  map[string]time.Time             // member names that announced a leave; guarded by mu
	joinCh   chan string                      // gossip addresses to join, fed by AddCandidate
	verifyCh chan string                      // peer ids whose key should be checked
	done     chan struct{}                    // closed by Close
	wg       sync.WaitGroup
	once     sync.Once
}

type entry struct {
	Peer
	member      string // memberlist name of the incarnation we follow
	alive       bool
	verifyTries int
}

// New checks cfg and prepares a mesh. It starts nothing.
func New(cfg Config) (*Mesh, error) {
	if cfg.Identity == nil {
		return nil, errors.New("mesh: no identity")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = DefaultConfig().RejoinInterval
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = DefaultConfig().LeaveTimeout
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
		cfg:      cfg,
		log:      cfg.Logger,
		id:       cfg.Identity.ID,
		member:   cfg.Identity.ID + "-" + hex.EncodeToString(nonce[:]),
		cert:     cert,
		dialer:   &Dialer{cert: cert},
		q:        newEventQueue(),
		peers:    make(map[string]*entry),
		handlers: make(map[string]func(*Stream)),
		conns:    make(map[net.Conn]struct{}),
		leaving:  make(map[string]time.Time),
		joinCh:   make(chan string, 256),
		verifyCh: make(chan string, 256),
		done:     make(chan struct{}),
	}
	m.members.Store(1)
	m.bcast = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(m.members.Load()) },
		RetransmitMult: 3,
	}
	m.meta = Meta{Proto: ProtocolVersion, Started: time.Now().UnixMilli(), State: cfg.State, Name: cfg.Name, Status: cfg.Status}
	if m.metaBytes, err = m.meta.Encode(); err != nil {
		return nil, err
	}
	m.handlers[ALPNPing] = func(s *Stream) {}
	m.handlers[ALPNDirectory] = m.serveDirectory
	return m, nil
}

// ID is this node's peer id.
func (m *Mesh) ID() string { return m.id }

// Dialer returns the dialer that presents this node's identity.
func (m *Mesh) Dialer() *Dialer { return m.dialer }

// Handle routes incoming streams that negotiated proto to fn, which runs
// in its own goroutine and owns the stream. Register before Listen.
func (m *Mesh) Handle(proto string, fn func(*Stream)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[proto] = fn
}

// Listen binds the TLS listener and starts memberlist on the gossip port.
// After it returns, Ports tells where the node can be reached.
func (m *Mesh) Listen() error {
	ln, err := listenTCP(m.cfg.BindAddr, m.cfg.TLSPort, m.cfg.PortFallback)
	if err != nil {
		return fmt.Errorf("listen for streams: %w", err)
	}
	tlsPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	m.mu.Lock()
	m.meta.TLSPort = tlsPort
	m.metaBytes, err = m.meta.Encode()
	m.mu.Unlock()
	if err != nil {
		ln.Close()
		return err
	}
	ml, err := m.createMemberlist(m.cfg.GossipPort)
	if err != nil && m.cfg.PortFallback && m.cfg.GossipPort != 0 && isAddrInUse(err) {
		m.log.Info("gossip port taken, using a free one", "port", m.cfg.GossipPort)
		ml, err = m.createMemberlist(0)
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("start gossip: %w", err)
	}
	m.mu.Lock()
	m.ml, m.ln = ml, ln
	m.mu.Unlock()
	return nil
}

// Ports returns the gossip and TLS ports in use (after Listen).
func (m *Mesh) Ports() (gossip, tls int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml != nil {
		gossip = int(m.ml.LocalNode().Port)
	}
	return gossip, int(m.meta.TLSPort)
}

func (m *Mesh) createMemberlist(port int) (*memberlist.Memberlist, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = m.member
	c.BindAddr = m.cfg.BindAddr.String()
	c.BindPort = port
	c.AdvertiseAddr = m.cfg.AdvertiseAddr.String()
	c.AdvertisePort = port
	c.ProtocolVersion = memberlist.ProtocolVersionMax
	c.Delegate = &delegate{m: m}
	c.Events = &eventDelegate{q: m.q}
	c.Alive = &aliveDelegate{self: m.member}
	c.Conflict = &conflictDelegate{log: m.log}
	c.LogOutput = &logWriter{log: m.log}
	c.DeadNodeReclaimTime = time.Second
	c.GossipInterval = 100 * time.Millisecond
	c.TCPTimeout = 3 * time.Second
	// Every run of a node is its own member, so a crashed-and-restarted
	// peer leaves a dead member behind until memberlist reaps it
	// (GossipToTheDeadTime). Dead members still count in memberlist's
	// estimate of the cluster size, which then expects more independent
	// suspicion confirmations than a small LAN has live nodes to give, and
	// keeps suspicion near its maximum (6x the minimum: 13-16 s to notice a
	// crash among three nodes). On a LAN, twice the minimum is caution
	// enough. With a suspicion multiplier of 3 (memberlist's LAN default
	// is 4) a crash is seen in about 5-6 s by every node; refutation still
	// saves a node that was merely slow to answer.
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 2
	c.GossipToTheDeadTime = 15 * time.Second
	if m.cfg.Tune != nil {
		m.cfg.Tune(c)
	}
	return memberlist.Create(c)
}

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
		m.rejoinLoop,
		m.verifyLoop,
		func(ctx context.Context) { m.acceptLoop(ctx, ln) },
	}
	for i := 0; i < 4; i++ {
		loops = append(loops, m.joinWorker)
	}
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
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
		close(m.done)
		m.mu.Lock()
		m.closed = true
		ml, ln := m.ml, m.ln
		m.mu.Unlock()
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

func (m *Mesh) closeConns() {
	m.mu.Lock()
	conns := make([]net.Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// AddCandidate takes a peer seen by discovery (or named by the user) and
// joins it unless it is already a live member. addr is a gossip host:port.
func (m *Mesh) AddCandidate(id string, addr string) {
	if id == m.id {
		return
	}
	if id != "" {
		m.mu.Lock()
		e := m.peers[id]
		live := e != nil && e.alive
		m.mu.Unlock()
		if live {
			return
		}
	}
	m.enqueueJoin(addr)
}

func (m *Mesh) enqueueJoin(addr string) {
	select {
	case m.joinCh <- addr:
	default:
		m.log.Debug("join queue full, dropping candidate", "addr", addr)
	}
}

func (m *Mesh) joinWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-m.joinCh:
			m.mu.Lock()
			ml := m.ml
			m.mu.Unlock()
			if _, err := ml.Join([]string{addr}); err != nil {
				m.log.Debug("join failed", "addr", addr, "err", err)
			}
		}
	}
}

// rejoinLoop dials peers lost without a goodbye, and the seeds while none
// of them is alive. memberlist never contacts a dead node again by itself,
// so without this the two halves of a healed split stay apart.
func (m *Mesh) rejoinLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []string
		aliveAddrs := map[string]bool{}
		m.mu.Lock()
		for _, e := range m.peers {
			a := netip.AddrPortFrom(e.Addr, e.GossipPort).String()
			if e.alive {
				aliveAddrs[a] = true
			} else if e.State == Offline {
				addrs = append(addrs, a)
			}
		}
		m.mu.Unlock()
		for _, s := range m.cfg.Join {
			if !aliveAddrs[s] {
				addrs = append(addrs, s)
			}
		}
		for _, a := range addrs {
			m.enqueueJoin(a)
		}
	}
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
	b, err := next.Encode()
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.meta, m.metaBytes = next, b
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	return ml.UpdateNode(m.cfg.LeaveTimeout)
}

// Self describes this node as others see it.
func (m *Mesh) Self() Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := Peer{
		ID: m.id, Name: m.meta.Name, State: m.meta.State, Status: m.meta.Status,
		Addr: m.cfg.AdvertiseAddr, TLSPort: m.meta.TLSPort, Verified: true,
		LastSeen: time.Now(), Started: m.meta.Started,
	}
	if m.ml != nil {
		p.GossipPort = m.ml.LocalNode().Port
	}
	return p
}

// Peers lists every peer seen since start, this node excluded, by name.
func (m *Mesh) Peers() []Peer {
	m.mu.Lock()
	now := time.Now()
	out := make([]Peer, 0, len(m.peers))
	for _, e := range m.peers {
		p := e.Peer
		if e.alive {
			// memberlist's failure detector vouches for it as of its last probe round
			p.LastSeen = now
		}
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

// Peer returns what is known of one peer.
func (m *Mesh) Peer(id string) (Peer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.peers[id]
	if !ok {
		return Peer{}, false
	}
	return e.Peer, true
}

// Subscribe calls fn for every membership event, in order, from one
// goroutine; fn must not block. The returned func cancels.
func (m *Mesh) Subscribe(fn func(Event)) (cancel func()) { return m.subs.Subscribe(fn) }

// Dial opens a secure stream to a live peer, checking its key.
func (m *Mesh) Dial(ctx context.Context, peerID, proto string) (*Stream, error) {
	m.mu.Lock()
	e, ok := m.peers[peerID]
	var addr string
	if ok {
		addr = netip.AddrPortFrom(e.Addr, e.TLSPort).String()
		ok = e.alive
	}
	known := e != nil
	m.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, ShortID(peerID))
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrPeerOffline, ShortID(peerID))
	}
	s, err := m.dialer.DialAddr(ctx, addr, peerID, proto)
	if err != nil {
		return nil, err
	}
	m.markVerified(peerID)
	return s, nil
}

func (m *Mesh) markVerified(id string) {
	m.mu.Lock()
	e := m.peers[id]
	changed := e != nil && !e.Verified
	if changed {
		e.Verified = true
	}
	m.mu.Unlock()
}

// verifyLoop proves, for every peer that joins, that whoever gossips under
// its id holds its key: gossip claims are only hints until then.
func (m *Mesh) verifyLoop(ctx context.Context) {
	type retry struct {
		id  string
		due time.Time
	}
	var retries []retry
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-m.verifyCh:
		case now := <-tick.C:
			kept := retries[:0]
			for _, r := range retries {
				if now.After(r.due) {
					m.queueVerify(r.id)
				} else {
					kept = append(kept, r)
				}
			}
			retries = kept
			continue
		}
		m.mu.Lock()
		e := m.peers[id]
		if e == nil || e.Verified || !e.alive {
			m.mu.Unlock()
			continue
		}
		addr := netip.AddrPortFrom(e.Addr, e.TLSPort).String()
		member := e.member
		m.mu.Unlock()
		s, err := m.dialer.DialAddr(ctx, addr, id, ALPNPing)
		if err == nil {
			s.Close()
			m.mu.Lock()
			if e := m.peers[id]; e != nil && e.member == member {
				e.Verified = true
			}
			m.mu.Unlock()
			continue
		}
		if errors.Is(err, ErrWrongPeer) {
			m.log.Warn("refusing to trust a peer: its address answers with another key", "peer", ShortID(id), "addr", addr, "err", err)
			continue
		}
		m.mu.Lock()
		if e := m.peers[id]; e != nil && e.member == member && e.verifyTries < 5 {
			e.verifyTries++
			retries = append(retries, retry{id: id, due: time.Now().Add(500 * time.Millisecond)})
		}
		m.mu.Unlock()
	}
}

func (m *Mesh) queueVerify(id string) {
	select {
	case m.verifyCh <- id:
	default:
	}
}

// processEvents applies memberlist's notifications, in order, to the peer
// table and tells subscribers. It runs outside memberlist's locks.
func (m *Mesh) processEvents(ctx context.Context) {
	for {
		ev, ok := m.q.pop()
		if !ok {
			return
		}
		out, verify := m.apply(ev)
		if verify != "" {
			m.queueVerify(verify)
		}
		if out == nil {
			continue
		}
		m.subs.Publish(*out)
	}
}

func (m *Mesh) apply(ev memberEvent) (out *Event, verify string) {
	id, ok := splitMember(ev.name)
	if !ok || id == m.id {
		return nil, ""
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.peers[id]
	switch ev.kind {
	case evJoin, evUpdate:
		meta, err := DecodeMeta(ev.meta)
		if err != nil {
			m.log.Warn("ignoring peer with bad metadata", "peer", ShortID(id), "err", err)
			return nil, ""
		}
		change := Updated
		switch {
		case e == nil:
			e = &entry{Peer: Peer{ID: id}}
			m.peers[id] = e
			change = Joined
		case e.member != ev.name:
			if e.alive && e.Started > meta.Started {
				return nil, "" // an older run of the peer, still dying
			}
			change = Returned
		case !e.alive:
			change = Returned
		case e.Name == meta.Name && e.State == meta.State && e.Status == meta.Status && e.Addr == ev.addr && e.GossipPort == ev.port && e.TLSPort == meta.TLSPort:
			change = "" // nothing a person would notice
		}
		if e.member != ev.name || e.Addr != ev.addr || e.TLSPort != meta.TLSPort {
			e.Verified = false
			e.verifyTries = 0
		}
		if !e.alive {
			m.members.Add(1)
		}
		e.member = ev.name
		e.alive = true
		e.Name, e.State, e.Status = meta.Name, meta.State, meta.Status
		e.Addr, e.GossipPort, e.TLSPort, e.Started = ev.addr, ev.port, meta.TLSPort, meta.Started
		e.LastSeen = now
		if !e.Verified {
			verify = id
		}
		if change == "" {
			return nil, verify
		}
		return &Event{Change: change, Peer: e.Peer}, verify
	case evLeave:
		if e == nil || e.member != ev.name || !e.alive {
			return nil, ""
		}
		e.alive = false
		e.LastSeen = now
		m.members.Add(-1)
		change := Lost
		e.State = Offline
		if _, ok := m.leaving[ev.name]; ok {
			change, e.State = Departed, Left
		}
		return &Event{Change: change, Peer: e.Peer}, ""
	case evIntent:
		if _, seen := m.leaving[ev.name]; seen {
			return nil, ""
		}
		m.leaving[ev.name] = now
		m.bcast.QueueBroadcast(leaveBroadcast(ev.name))
		m.pruneLeaving(now)
		// The goodbye may arrive after failure detection already called
		// the peer lost: it left after all.
		if e != nil && e.member == ev.name && !e.alive && e.State == Offline {
			e.State = Left
			return &Event{Change: Departed, Peer: e.Peer}, ""
		}
		return nil, ""
	}
	return nil, ""
}

// splitMember reads a memberlist node name, "<peer id>-<16 hex nonce>".
// Each run of a node has its own name, so a restarted peer joins as a new
// member at once, on any port, instead of waiting for memberlist to give
// up on the old run; the peer table folds runs back into one peer by id.
func splitMember(name string) (id string, ok bool) {
	id, nonce, found := strings.Cut(name, "-")
	if !found || !ValidID(id) || len(nonce) != 16 {
		return "", false
	}
	if _, err := strconv.ParseUint(nonce, 16, 64); err != nil {
		return "", false
	}
	return id, true
}

func (m *Mesh) acceptLoop(ctx context.Context, ln net.Listener) {
	const maxConns = 1024
	sem := make(chan struct{}, maxConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("accept", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			m.log.Warn("too many connections, refusing one", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			<-sem
			continue
		}
		m.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			defer func() { <-sem }()
			defer func() {
				m.mu.Lock()
				delete(m.conns, c)
				m.mu.Unlock()
				c.Close()
			}()
			m.serveConn(ctx, c)
		}()
	}
}

func (m *Mesh) serveConn(ctx context.Context, c net.Conn) {
	m.mu.Lock()
	protos := make([]string, 0, len(m.handlers))
	for p := range m.handlers {
		protos = append(protos, p)
	}
	m.mu.Unlock()
	slices.Sort(protos)
	tc := tls.Server(c, serverTLSConfig(m.cert, protos))
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		m.log.Info("refused a connection: bad handshake", "remote", c.RemoteAddr(), "err", err)
		return
	}
	st := tc.ConnectionState()
	id, err := peerIDOf(rawCerts(st))
	if err != nil {
		m.log.Info("refused a connection", "remote", c.RemoteAddr(), "err", err)
		return
	}
	m.mu.Lock()
	h := m.handlers[st.NegotiatedProtocol]
	m.mu.Unlock()
	if h == nil {
		m.log.Info("refused a connection: no protocol in common", "remote", c.RemoteAddr(), "peer", ShortID(id))
		return
	}
	h(&Stream{Conn: tc, peer: id})
}

func listenTCP(addr netip.Addr, port int, fallback bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil && fallback && port != 0 && isAddrInUse(err) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	}
	return ln, err
}

func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
