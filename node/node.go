package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"lanchat/discovery"
	"lanchat/filexfer"
	"lanchat/internal/netkey"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/chat"
	"lanchat/message/roomsync"
	"lanchat/message/store"
	"lanchat/node/api"
)

// ErrClosed is returned by a node's methods after Shutdown or Close; it
// is api.ErrClosed, so front ends match one value in process and over
// the socket.
var ErrClosed = api.ErrClosed

// Node is one lanchat peer: discovery, mesh, messages and the chat
// service, composed, and the local API that reaches them.
//
// The lifecycle is net/http's: New builds and wires everything and
// starts nothing; Run serves until its context ends, then says goodbye;
// Shutdown says goodbye and waits; Close stops at once and waits. Both
// are idempotent, and Run after either returns ErrClosed.
type Node struct {
	cfg  Config
	log  *slog.Logger
	id   *mesh.Identity
	addr netip.Addr
	ifi  *net.Interface
	// network is the office key ring; empty in an open network.
	network netkey.Ring
	warn    string // about the address chosen, published once the node is up
	wide    bool   // listening on every address (no --bind): the address set is in use
	netMu   sync.Mutex
	set     addrSet // the LAN interfaces in use, as last seen (guarded by netMu)
	// netChanged (buffered 1) tells discovery that set changed.
	netChanged chan struct{}
	seeds      []string // the --join seeds of this run: given, or remembered (peers.json)

	lock  *os.File
	st    *store.Store
	mesh  *mesh.Mesh
	msg   *message.Service
	chat  *chat.Service
	sync  *roomsync.Syncer
	files *filexfer.Service
	hub   *hub
	clock *message.Clock

	statusMu sync.Mutex // held while the presence changes and its event goes out

	mu      sync.Mutex // guards the fields below
	state   lifeState
	ready   *api.Ready    // set once the node listens
	readyCh chan struct{} // closed when ready is set
	stopRun func()        // ends a running Run (its context)
	runDone chan struct{} // closed when Run has returned
	release sync.Once     // frees what New took, once
}

type lifeState int

const (
	stateBuilt   lifeState = iota // New returned
	stateRunning                  // Run is serving
	stateStopped                  // Shutdown or Close was called, or Run returned
)

// New checks cfg, takes the data directory (its lock, identity, history,
// contacts and saved presence) and wires the parts together. It starts
// no goroutine and opens no socket; Close releases what it took.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, hub: newHub(), runDone: make(chan struct{}), readyCh: make(chan struct{}), netChanged: make(chan struct{}, 1)}
	if err := n.build(); err != nil {
		n.free()
		return nil, err
	}
	return n, nil
}

func (n *Node) build() error {
	cfg := n.cfg
	if err := checkDataDir(cfg.DataDir, cfg.Logger); err != nil {
		return err
	}
	var err error
	if n.lock, err = lockDir(cfg.DataDir); err != nil {
		return err
	}
	if n.id, err = mesh.LoadOrCreateIdentity(cfg.DataDir); err != nil {
		return err
	}
	if n.addr, n.ifi, n.warn, err = chooseAddr(cfg.Bind, cfg.Iface); err != nil {
		return err
	}
	if cfg.Bind == "" || netip.MustParseAddr(cfg.Bind).IsUnspecified() {
		n.wide = true
		if n.set, err = scanInterfaces(cfg.Iface); err != nil {
			return err
		}
	}
	var weak string
	if n.network, weak, err = loadNetwork(cfg.NetworkKeyFile); err != nil {
		return err
	}
	if weak != "" {
		n.warn = strings.TrimPrefix(n.warn+"; "+weak, "; ")
	}
	if n.st, err = openStore(cfg.DataDir, cfg.Sync, n.log); err != nil {
		return err
	}
	pres, err := loadPresence(cfg.DataDir)
	if err != nil {
		n.log.Warn("ignoring saved presence", "err", err)
	}

	mcfg := mesh.DefaultConfig()
	mcfg.Identity = n.id
	mcfg.Name = cfg.Name
	mcfg.State, mcfg.Status = pres.state, pres.text
	mcfg.AdvertiseAddr = n.addr
	if cfg.Bind != "" {
		mcfg.BindAddr = netip.MustParseAddr(cfg.Bind)
	}
	if n.wide {
		// Every address of every LAN interface, those that come later
		// too; the mesh refuses streams to other addresses.
		mcfg.BindAddr = wildcard()
		mcfg.Addrs = n.set.prefixes()
	}
	mcfg.GossipPort, mcfg.TLSPort = cfg.GossipPort, cfg.Port
	// --join given replaces the seeds remembered; without it the last
	// ones given are used, with the peers' last verified addresses.
	known, err := loadPeers(cfg.DataDir)
	if err != nil {
		n.log.Warn("ignoring remembered peers", "err", err)
	}
	n.seeds = known.Seeds
	if len(cfg.Join) > 0 {
		n.seeds = validSeeds(cfg.Join)
	}
	mcfg.Join = cfg.Join
	if len(cfg.Join) == 0 {
		mcfg.Join = n.seeds
	}
	mcfg.Known = known.Peers
	mcfg.ReconnectHorizon = cfg.ReconnectHorizon
	mcfg.Tune = cfg.MeshTune
	mcfg.Network = n.network
	mcfg.Logger = n.log.With("part", "mesh")
	if n.mesh, err = mesh.New(mcfg); err != nil {
		return err
	}
	m := n.mesh
	n.clock = message.NewClock(time.Now)
	selfName := func() string { return m.Self().Name }

	scfg := message.DefaultConfig()
	scfg.Self = n.id.ID
	scfg.Name = selfName
	scfg.Key = n.id.Key
	scfg.Dial = func(ctx context.Context, peerID, proto string) (message.Stream, error) {
		return m.Dial(ctx, peerID, proto)
	}
	// The chat service stores what arrives; it is built just below and
	// nothing arrives before Run.
	scfg.DeliverBatch = func(ctx context.Context, envs []*message.Envelope) []error {
		return n.chat.DeliverBatch(ctx, envs)
	}
	scfg.Clock = n.clock
	scfg.Logger = n.log.With("part", "message")
	n.msg = message.New(scfg)
	if n.chat, err = chat.New(chat.Config{
		Store: n.st, Self: n.id.ID, Key: n.id.Key, Name: selfName, Clock: n.clock,
		Presence: m, Transport: n.msg, RoomSync: roomSyncClient{n},
		ContactsPath: filepath.Join(cfg.DataDir, ContactsFile),
		PeerRate:     cfg.PeerRate, PeerBurst: cfg.PeerBurst,
		Publish: func(ev chat.Event) {
			if a := chatEvent(ev, n.roomInfo); a != nil {
				n.hub.publish(a)
			}
		},
		Logger: n.log.With("part", "chat"),
	}); err != nil {
		return err
	}
	m.Handle(message.ALPN, func(s *mesh.Stream) { n.msg.HandleStream(s) })
	rcfg := roomsync.DefaultConfig()
	rcfg.Dial = scfg.Dial
	rcfg.Source = roomSource{n.chat}
	rcfg.Logger = n.log.With("part", "roomsync")
	n.sync = roomsync.New(rcfg)
	m.Handle(roomsync.ALPN, func(s *mesh.Stream) { n.sync.HandleStream(s) })
	if err := n.buildFiles(); err != nil {
		return err
	}
	n.hub.rooms = func() []api.Room {
		rs, err := n.chat.Rooms(context.Background())
		if err != nil {
			n.log.Warn("rooms for a snapshot", "err", err)
		}
		return apiRooms(rs)
	}
	n.hub.unread = func() []api.DirectUnread {
		us, err := n.chat.DirectUnread(context.Background(), api.MaxSnapshotUnread)
		if err != nil {
			n.log.Warn("unread counts for a snapshot", "err", err)
		}
		out := make([]api.DirectUnread, 0, len(us))
		for _, u := range us {
			out = append(out, api.DirectUnread{Peer: ref(u.Peer), Unread: u.Unread})
		}
		return out
	}
	return nil
}

// free releases what New took, in the reverse order; it runs once.
func (n *Node) free() {
	n.release.Do(func() {
		if n.mesh != nil {
			n.mesh.Close()
		}
		n.freeFiles()
		if n.sync != nil {
			n.sync.Close() // before the chat service its handlers read from
		}
		if n.chat != nil {
			n.chat.Close()
		}
		if n.msg != nil {
			n.msg.Close()
		}
		if n.st != nil {
			n.st.Close()
		}
		if n.lock != nil {
			n.lock.Close()
		}
		n.hub.close()
	})
}

// Run listens, joins the network and serves until ctx ends; then it says
// goodbye to the network (others show this node as left), stops every
// part and returns nil. After Shutdown or Close it returns ErrClosed. A
// failure to start (ports, the control socket) is returned at once.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	switch n.state {
	case stateRunning:
		n.mu.Unlock()
		return errors.New("node: Run called twice")
	case stateStopped:
		n.mu.Unlock()
		return ErrClosed
	}
	n.state = stateRunning
	ctx, cancel := context.WithCancel(ctx)
	n.stopRun = cancel
	n.mu.Unlock()
	defer close(n.runDone)
	defer cancel()
	defer n.free()
	err := n.serve(ctx)
	n.mu.Lock()
	closed := n.state == stateStopped
	n.state = stateStopped
	n.mu.Unlock()
	if err == nil && closed {
		err = ErrClosed
	}
	return err
}

// serve is Run's body: every background loop is started here, owned by
// one WaitGroup, and stopped by ctx.
func (n *Node) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg, m := n.cfg, n.mesh
	if err := m.Listen(); err != nil {
		return err
	}
	gport, tport := m.Ports()
	ctl, err := listenControl(n)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the wait: if the mesh stops by itself, so does every loop
	// loop starts a background loop that Run owns: it stops with ctx,
	// and Run waits for it before anything it uses is closed.
	loop := func(name string, f func(ctx context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				n.warning(name + " stopped: " + err.Error())
			}
		}()
	}
	loop("control socket", ctl.serve)
	peersWake := make(chan struct{}, 1)
	loop("peers file", func(ctx context.Context) error { return n.keepPeers(ctx, n.seeds, peersWake) })

	cancelSub := m.Subscribe(func(ev mesh.Event) {
		if ev.Change == mesh.Verified || ev.Change == mesh.Lost || ev.Change == mesh.Updated && ev.Peer.Verified {
			select {
			case peersWake <- struct{}{}:
			default:
			}
		}
		n.chat.Saw(ev.Peer)
		p := withTrust(n.chat, []api.Peer{apiPeer(ev.Peer)})[0]
		pe := presenceEvent(ev)
		pe.Peer.Trusted, pe.Peer.Warning = p.Trusted, p.Warning
		n.hub.publishPeer(pe, &p)
		if ev.Change == mesh.Joined || ev.Change == mesh.Returned {
			n.chat.PeerOnline(ev.Peer.ID)
		}
		// Rooms: what it is in, and what we missed while apart. A peer
		// back on the run we verified before is not verified again.
		if ev.Change == mesh.Verified || ev.Change == mesh.Returned && ev.Peer.Verified {
			n.chat.PeerMet(ev.Peer.ID)
		}
		n.filesPeerEvent(ev)
	})
	defer cancelSub()

	ready := api.Ready{
		Type: api.TypeReady, ID: n.id.ID, Name: cfg.Name, Addr: n.addr.String(),
		GossipPort: gport, Port: tport, Control: ControlSocket(cfg.DataDir), MDNS: !cfg.NoMDNS,
	}
	n.mu.Lock()
	n.ready = &ready
	n.mu.Unlock()
	n.hub.publish(ready)
	close(n.readyCh)
	// After ready, which is the first event: the chat service's first
	// act may be to join #general, an event of its own.
	loop("chat service", n.chat.Run)
	loop("file transfers", n.files.Run)
	if n.warn != "" {
		n.warning(n.warn)
	}
	if n.wide {
		loop("interface watch", n.watchInterfaces)
	}
	if !cfg.NoMDNS {
		n.startDiscovery(loop, gport, tport)
	}
	return m.Run(ctx) // says goodbye when ctx ends, unless Close came first
}

// startDiscovery runs mDNS on every interface of the address set, one
// browser each (a link-local address means something only on its own
// link, and each link is answered with its own addresses); when the set
// changes (watchInterfaces), the browsers of the interfaces that changed
// start again, with their new addresses, announcing and querying anew.
func (n *Node) startDiscovery(loop func(string, func(context.Context) error), gport, tport int) {
	loop("mDNS discovery", func(ctx context.Context) error {
		run := map[string]*ifaceBrowser{} // by interface name
		defer func() {
			for _, b := range run {
				b.stop()
			}
		}()
		reconcile := func(set addrSet) {
			want := map[string]lanIface{}
			for _, u := range set.Used {
				want[u.Name] = u
			}
			if !n.wide && n.ifi != nil {
				want = map[string]lanIface{n.ifi.Name: {Name: n.ifi.Name, Index: n.ifi.Index, Prefixes: []netip.Prefix{netip.PrefixFrom(n.addr, n.addr.BitLen())}}}
			}
			for name, b := range run {
				if u, ok := want[name]; !ok || (addrSet{Used: []lanIface{u}}).key() != b.key {
					b.stop()
					delete(run, name)
				}
			}
			for name, u := range want {
				if run[name] == nil {
					if b := n.browse(ctx, u, gport, tport); b != nil {
						run[name] = b
					}
				}
			}
		}
		reconcile(n.addrSet())
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-n.netChanged:
				reconcile(n.addrSet())
			}
		}
	})
}

// watchInterfaces looks at the interfaces every ifaceScanInterval while
// the node listens wide; on a change (an address, an interface, a cable)
// it updates the signed metadata, so that peers learn the new addresses,
// and wakes discovery.
func (n *Node) watchInterfaces(ctx context.Context) error {
	t := time.NewTicker(ifaceScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		set, err := scanInterfaces(n.cfg.Iface)
		if err != nil {
			continue
		}
		n.netMu.Lock()
		changed := set.key() != n.set.key()
		n.set = set
		n.netMu.Unlock()
		if !changed {
			continue
		}
		n.log.Info("network interfaces changed", "addrs", fmt.Sprint(set.prefixes()))
		if err := n.mesh.SetAddrs(set.prefixes()); err != nil {
			n.log.Warn("cannot announce the new addresses", "err", err)
		}
		select {
		case n.netChanged <- struct{}{}:
		default:
		}
	}
}

// ifaceScanInterval is how often the interfaces are looked at: a Wi-Fi
// roam or a DHCP renewal is noticed within that.
const ifaceScanInterval = 3 * time.Second

// addrSet is the address set as last seen.
func (n *Node) addrSet() addrSet {
	n.netMu.Lock()
	defer n.netMu.Unlock()
	return n.set
}

// ifaceBrowser is mDNS running on one interface.
type ifaceBrowser struct {
	key    string // the interface's addresses when it started
	cancel func()
	done   chan struct{}
}

func (b *ifaceBrowser) stop() {
	b.cancel()
	<-b.done
}

// browse starts mDNS on one interface, advertising its addresses.
func (n *Node) browse(ctx context.Context, u lanIface, gport, tport int) *ifaceBrowser {
	ifi, err := net.InterfaceByName(u.Name)
	if err != nil {
		return nil
	}
	var addrs []netip.Addr
	for _, p := range u.Prefixes {
		addrs = append(addrs, p.Addr())
	}
	if len(addrs) > discovery.MaxAddrs {
		addrs = addrs[:discovery.MaxAddrs]
	}
	dcfg := discovery.DefaultConfig()
	dcfg.Self = &discovery.Candidate{
		ID: n.id.ID, Addrs: addrs, GossipPort: uint16(gport), TLSPort: uint16(tport),
		Proto: mesh.ProtocolVersion, Network: networkTag(n.network),
	}
	dcfg.Iface = ifi
	// Queries back off while gossip holds the cluster, and start over
	// quickly when every peer is lost.
	dcfg.Peers = n.mesh.LiveCount
	dcfg.Logger = n.log.With("part", "discovery", "iface", u.Name)
	d, err := discovery.New(dcfg)
	if err != nil {
		n.warning("mDNS discovery is off on " + u.Name + ": " + err.Error() + "; reach peers with --join")
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	b := &ifaceBrowser{key: addrSet{Used: []lanIface{u}}.key(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		err := d.Run(ctx, func(c discovery.Candidate) {
			if c.Proto != mesh.ProtocolVersion || !sameNetwork(n.network, c.Network) {
				return
			}
			if a, ok := pickAddr(c.Addrs, u.Prefixes); ok {
				n.mesh.AddCandidate(c.ID, netip.AddrPortFrom(a, c.GossipPort).String())
			}
		})
		if err != nil && ctx.Err() == nil {
			n.warning("mDNS discovery on " + u.Name + " stopped: " + err.Error())
		}
	}()
	return b
}

// wildcard is the address to listen on every interface: [::], which
// takes IPv4 too, unless the system has no IPv6.
func wildcard() netip.Addr {
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		return netip.IPv4Unspecified()
	}
	ln.Close()
	return netip.IPv6Unspecified()
}

func (n *Node) warning(text string) {
	n.log.Warn(text)
	n.hub.publish(api.Warning{Type: api.TypeWarning, Text: text})
}

// pickAddr chooses which of a candidate's addresses (heard on the
// interface whose addresses are own) to join: one on the interface's
// subnets if there is one, else a link-local one (discovery gave it the
// interface's zone), else the first of a family the interface has.
func pickAddr(addrs []netip.Addr, own []netip.Prefix) (netip.Addr, bool) {
	has4, has6 := false, false
	for _, p := range own {
		has4, has6 = has4 || p.Addr().Is4(), has6 || p.Addr().Is6()
	}
	var ll, first netip.Addr
	for _, a := range addrs {
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			continue
		}
		for _, p := range own {
			if !a.IsLinkLocalUnicast() && p.Contains(a.WithZone("")) {
				return a, true
			}
		}
		switch {
		case a.Is6() && a.IsLinkLocalUnicast():
			if !ll.IsValid() && a.Zone() != "" {
				ll = a
			}
		case !first.IsValid() && (a.Is4() && has4 || a.Is6() && has6):
			first = a
		}
	}
	if ll.IsValid() {
		return ll, true
	}
	return first, first.IsValid()
}

// Shutdown says goodbye to the network and waits for Run to return, or
// for ctx to end. A node that never ran is closed. It is idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	if !n.stop() {
		n.free()
		return nil
	}
	select {
	case <-n.runDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the node without a goodbye (others will see it lost) and
// waits for every goroutine it started. It is idempotent.
func (n *Node) Close() error {
	if n.mesh != nil {
		n.mesh.Close() // first: Run's goodbye is skipped once the mesh is closed
	}
	if n.stop() {
		<-n.runDone
	} else {
		n.free()
	}
	return nil
}

// stop marks the node stopped and ends Run's context; it reports whether
// Run is (or was) serving, so there is a Run to wait for.
func (n *Node) stop() (ran bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	prev := n.state
	n.state = stateStopped
	if n.stopRun != nil {
		n.stopRun()
	}
	return prev == stateRunning || n.stopRun != nil
}

// Ready is closed once the node listens and has published its Ready
// event.
func (n *Node) Ready() <-chan struct{} { return n.readyCh }

// info is the node's Ready event, once it listens.
func (n *Node) info() (api.Ready, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready == nil {
		return api.Ready{}, false
	}
	return *n.ready, true
}

func (n *Node) closed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == stateStopped
}

// ID is this node's peer id.
func (n *Node) ID() string { return n.id.ID }
