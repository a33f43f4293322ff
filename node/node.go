package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"

	"lanchat/discovery"
	"lanchat/internal/event"
	"lanchat/mesh"
	"lanchat/message"
)

// Config configures a node. DefaultConfig gives one that works on a LAN.
type Config struct {
	// DataDir holds the identity key, the lock and the control socket.
	DataDir string
	// Name is the display name; empty means the user and host name.
	Name string
	// Bind is the IP address to listen on; empty chooses the LAN address.
	Bind string
	// Iface is the network interface to use; empty chooses one.
	Iface string
	// Port is the TLS port for messages; GossipPort the memberlist port.
	// Each falls back to a free port when taken.
	Port       int
	GossipPort int
	// Join lists host:port gossip addresses of peers to join, for peers
	// that multicast cannot reach.
	Join []string
	// NoMDNS turns multicast discovery off; peers come from Join only.
	NoMDNS bool
	// Logger receives diagnostics (not events).
	Logger *slog.Logger
	// Sync is how hard the history is pushed to disk: "normal" (the
	// default) survives a killed or crashed lanchat, losing nothing it
	// reported; "full" also survives a power cut, at the price of an fsync
	// per commit (about 0.1-1 ms each, shared by concurrent messages).
	Sync string
	// PeerRate and PeerBurst bound how many messages a second one peer
	// may deliver to this node (a token bucket; 0 means the default,
	// negative means no limit).
	PeerRate  float64
	PeerBurst float64
	// MeshTune adjusts memberlist timers (tests only).
	MeshTune func(*memberlist.Config)
}

// DefaultConfig returns the configuration `lanchat run` uses with no flags.
func DefaultConfig() Config {
	return Config{
		DataDir:    DefaultDataDir(),
		Name:       DefaultName(),
		Port:       mesh.DefaultTLSPort,
		GossipPort: mesh.DefaultGossipPort,
		Logger:     slog.Default(),
	}
}

// DefaultDataDir is $XDG_DATA_HOME/lanchat, or ~/.local/share/lanchat.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "lanchat")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "lanchat")
	}
	return filepath.Join(os.TempDir(), "lanchat-"+strconv.Itoa(os.Getuid()))
}

// DefaultName is "user@host", cut to fit the name limit.
func DefaultName() string {
	name := "someone"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + strings.SplitN(h, ".", 2)[0]
	}
	if mesh.ValidName(name) != nil {
		return "someone"
	}
	for len(name) > mesh.MaxNameLen {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	return name
}

// ControlSocket is the path of the control socket in a data directory.
func ControlSocket(dataDir string) string { return filepath.Join(dataDir, "control.sock") }

// Errors callers act on.
var (
	ErrPeerOffline = errors.New("peer is offline")
	ErrInvalidText = errors.New("invalid message text")
)

// Node is a running lanchat peer: discovery, mesh and messages, composed.
type Node struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex // guards the fields below
	ready *ReadyEvent
	mesh  *mesh.Mesh
	msg   *message.Service

	pubMu    sync.Mutex                // serialises publish: subscribers see one event at a time, in order
	subs     event.Registry[any]       // event subscribers
	chat     *chat                     // set in Run before anything can call it
	out      *outbox                   // set in Run
	contacts *contacts                 // set in Run
	limiter  *limiter                  // received messages per peer
	watchMu  sync.Mutex                // guards watchers
	watchers map[string]*deliveryWatch // Sends waiting to hear of their message, by id

	readyCh chan struct{} // closed when the node is up
	once    sync.Once
	closeCh chan struct{} // closed by Close
}

// New checks cfg. It starts nothing.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName()
	}
	if err := mesh.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("--name: %w", err)
	}
	if _, err := syncMode(cfg.Sync); err != nil {
		return nil, err
	}
	rate, burst := cfg.PeerRate, cfg.PeerBurst
	if rate == 0 {
		rate = defaultPeerRate
	}
	if burst <= 0 {
		burst = max(defaultPeerBurst, rate)
	}
	return &Node{
		cfg:      cfg,
		log:      cfg.Logger,
		limiter:  newLimiter(rate, burst),
		watchers: make(map[string]*deliveryWatch),
		readyCh:  make(chan struct{}),
		closeCh:  make(chan struct{}),
	}, nil
}

// Subscribe calls fn with every event (ReadyEvent, MessageEvent,
// PresenceEvent, WarningEvent), in order, from one goroutine at a time;
// fn must not block. The returned func cancels.
func (n *Node) Subscribe(fn func(ev any)) (cancel func()) { return n.subs.Subscribe(fn) }

func (n *Node) publish(ev any) {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	n.subs.Publish(ev)
}

func (n *Node) warn(text string) {
	n.log.Warn(text)
	n.publish(WarningEvent{Type: "warning", Text: text})
}

// Ready is closed once the node listens and has published its ReadyEvent.
func (n *Node) Ready() <-chan struct{} { return n.readyCh }

// Info returns the ReadyEvent once the node is up.
func (n *Node) Info() (ReadyEvent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready == nil {
		return ReadyEvent{}, false
	}
	return *n.ready, true
}

// Run starts the node and blocks until ctx ends or Close is called; then
// it says goodbye to the network and returns. Errors before the node is up
// (data directory in use, ports, identity) are returned at once.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg := n.cfg
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	id, err := mesh.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return err
	}
	addr, ifi, warning, err := chooseAddr(cfg.Bind, cfg.Iface)
	if err != nil {
		return err
	}
	st, err := openStore(cfg.DataDir, cfg.Sync, n.log)
	if err != nil {
		return err
	}
	defer st.Close()
	cts, err := loadContacts(cfg.DataDir)
	if err != nil {
		n.log.Warn("ignoring unreadable contacts", "err", err)
	}
	n.contacts = cts
	defer cts.save()
	clock := message.NewClock(time.Now)
	pres, err := loadPresence(cfg.DataDir)
	if err != nil {
		n.log.Warn("ignoring saved presence", "err", err)
	}

	mcfg := mesh.DefaultConfig()
	mcfg.Identity = id
	mcfg.Name = cfg.Name
	mcfg.State, mcfg.Status = pres.state, pres.text
	mcfg.AdvertiseAddr = addr
	if cfg.Bind != "" {
		mcfg.BindAddr = netip.MustParseAddr(cfg.Bind)
	}
	mcfg.GossipPort, mcfg.TLSPort = cfg.GossipPort, cfg.Port
	mcfg.Join = cfg.Join
	mcfg.Tune = cfg.MeshTune
	mcfg.Logger = n.log.With("part", "mesh")
	m, err := mesh.New(mcfg)
	if err != nil {
		return err
	}

	scfg := message.DefaultConfig()
	scfg.Self = id.ID
	scfg.Name = func() string { return m.Self().Name }
	scfg.Key = id.Key
	scfg.Dial = func(ctx context.Context, peerID, proto string) (message.Stream, error) {
		return m.Dial(ctx, peerID, proto)
	}
	scfg.DeliverBatch = n.deliverBatch
	scfg.Clock = clock
	scfg.Logger = n.log.With("part", "message")
	svc := message.New(scfg)
	defer svc.Close()
	m.Handle(message.ALPN, func(s *mesh.Stream) { svc.HandleStream(s) })

	if err := m.Listen(); err != nil {
		return err
	}
	gport, tport := m.Ports()

	ctl, err := listenControl(cfg.DataDir)
	if err != nil {
		m.Close()
		return err
	}
	n.chat = &chat{st: st, self: id.ID, name: func() string { return m.Self().Name }, key: id.Key, clock: clock}
	n.out = newOutbox(ctx, n, m, svc)
	n.mu.Lock()
	n.mesh, n.msg = m, svc
	n.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.serveControl(ctx, ctl)
	}()
	defer ctl.Close()

	cancelSub := m.Subscribe(func(ev mesh.Event) {
		n.contacts.saw(ev.Peer.ID, ev.Peer.Name)
		n.publish(presenceEvent(ev))
		if ev.Change == mesh.Joined || ev.Change == mesh.Returned {
			n.out.kick(ev.Peer.ID)
		}
	})
	defer cancelSub()
	wg.Add(2)
	go func() {
		defer wg.Done()
		n.out.run()
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-n.contacts.urgent:
			}
			if err := n.contacts.save(); err != nil {
				n.log.Warn("save contacts", "err", err)
			}
		}
	}()

	ready := &ReadyEvent{
		Type: "ready", ID: id.ID, Name: cfg.Name, Addr: addr.String(),
		GossipPort: gport, Port: tport, Control: ControlSocket(cfg.DataDir), MDNS: !cfg.NoMDNS,
	}
	n.mu.Lock()
	n.ready = ready
	n.mu.Unlock()
	n.publish(*ready)
	close(n.readyCh)
	if warning != "" {
		n.warn(warning)
	}

	if !cfg.NoMDNS {
		dcfg := discovery.DefaultConfig()
		dcfg.Self = &discovery.Candidate{
			ID: id.ID, Addrs: []netip.Addr{addr}, GossipPort: uint16(gport), TLSPort: uint16(tport),
			Proto: mesh.ProtocolVersion,
		}
		dcfg.Iface = ifi
		dcfg.Logger = n.log.With("part", "discovery")
		d, err := discovery.New(dcfg)
		if err != nil {
			n.warn("mDNS discovery is off: " + err.Error() + "; reach peers with --join")
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := d.Run(ctx, func(c discovery.Candidate) {
					if c.Proto != mesh.ProtocolVersion || c.Network != "" {
						return
					}
					if a, ok := pickAddr(c.Addrs, addr); ok {
						m.AddCandidate(c.ID, netip.AddrPortFrom(a, c.GossipPort).String())
					}
				})
				if err != nil {
					n.warn("mDNS discovery stopped: " + err.Error())
				}
			}()
		}
	}
	err = m.Run(ctx)
	cancel() // stop the loops above before their deferred waits
	return err
}

// pickAddr chooses which of a candidate's addresses to dial: one in our
// own subnet if there is one (a /24 guess; mDNS only reaches the local
// link anyway), else the first of our family.
func pickAddr(addrs []netip.Addr, self netip.Addr) (netip.Addr, bool) {
	var first netip.Addr
	for _, a := range addrs {
		if a.Is4() != self.Is4() || a.IsUnspecified() || a.IsMulticast() {
			continue
		}
		if p, err := self.Prefix(24); err == nil && p.Contains(a) {
			return a, true
		}
		if !first.IsValid() {
			first = a
		}
	}
	return first, first.IsValid()
}

// Close stops a running node (with its goodbye, as cancelling Run's
// context does). It is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() { close(n.closeCh) })
	return nil
}

func (n *Node) parts() (*mesh.Mesh, *message.Service, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mesh == nil {
		return nil, nil, errors.New("node is not running")
	}
	return n.mesh, n.msg, nil
}

// Peers lists every peer seen since the node started.
func (n *Node) Peers() ([]mesh.Peer, error) {
	m, _, err := n.parts()
	if err != nil {
		return nil, err
	}
	return m.Peers(), nil
}

// SetStatus changes this node's presence, live and for later starts.
func (n *Node) SetStatus(state mesh.State, text string) error {
	if err := mesh.ValidStatus(text); err != nil {
		return err
	}
	m, _, err := n.parts()
	if err != nil {
		return err
	}
	if err := savePresence(n.cfg.DataDir, presence{state: state, text: text}); err != nil {
		return err
	}
	return m.SetPresence(state, text)
}

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

// dialUnix is used by the control client; a var-free helper for tests.
func dialUnix(path string) (net.Conn, error) {
	return net.DialTimeout("unix", path, 2*time.Second)
}
