package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

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
	m.metaBytes = nil // signed with the gossip port, once memberlist has one
	m.mu.Unlock()
	port := m.cfg.GossipPort
	if err := probeGossipPort(m.cfg.BindAddr, port); err != nil {
		if !m.cfg.PortFallback || !isAddrInUse(err) {
			ln.Close()
			return fmt.Errorf("start gossip: %w", err)
		}
		m.log.Info("gossip port taken, using a free one", "port", port)
		port = 0
	}
	ml, err := m.createMemberlist(port)
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
	return int(m.gossipPort()), int(m.meta.TLSPort)
}

// gossipPort is the port memberlist advertises, 0 before Listen. It is
// read from memberlist's configuration, which memberlist fills in at
// Create and never changes: LocalNode returns memberlist's own node,
// whose fields its alive handling rewrites under a lock we cannot take.
// Called with mu held.
func (m *Mesh) gossipPort() uint16 {
	if m.ml == nil {
		return 0
	}
	return uint16(m.mlConf.AdvertisePort)
}

// pushPullInterval is the base period of memberlist's full-state
// exchange with one random member (memberlist stretches it above 32
// nodes); see the package doc.
const pushPullInterval = 60 * time.Second

// gossipInterval is how often memberlist sends what is queued for
// gossip; see the package doc.
const gossipInterval = 200 * time.Millisecond

func (m *Mesh) createMemberlist(port int) (*memberlist.Memberlist, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = m.member
	c.BindAddr = m.cfg.BindAddr.String()
	c.BindPort = port
	c.AdvertiseAddr = m.cfg.AdvertiseAddr.String()
	c.AdvertisePort = port
	c.ProtocolVersion = memberlist.ProtocolVersionMax
	c.Delegate = &delegate{m: m}
	c.Events = &eventDelegate{q: m.q, g: m.gate}
	c.Alive = &aliveDelegate{g: m.gate}
	c.Merge = &mergeDelegate{g: m.gate}
	c.Conflict = &conflictDelegate{log: m.log}
	c.Ping = &pingDelegate{r: &m.acks}
	c.LogOutput = &logWriter{log: m.log, refuted: func() {
		select {
		case m.refuteWake <- struct{}{}:
		default:
		}
	}}
	c.DeadNodeReclaimTime = time.Second
	// memberlist's LAN default: each tick wakes the process (a tenth of
	// an idle node's CPU at 100 ms) and nothing is sent while nothing
	// changes; see the package doc for what it costs in speed.
	c.GossipInterval = gossipInterval
	// No LZW on what we send: gossip is signed metadata and keys, which
	// do not compress, and a LAN has the bandwidth; the compressor's
	// tables were a twelfth of an idle node's CPU and most of its garbage.
	// What peers send compressed is still read (memberlist bounds its
	// expansion).
	c.EnableCompression = false
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
	// Sized for tens to hundreds of nodes; the package doc has the
	// reasoning and the formulas.
	c.PushPullInterval = pushPullInterval
	c.GossipNodes = 3
	c.RetransmitMult = 4
	c.ProbeInterval = time.Second
	if m.cfg.Tune != nil {
		m.cfg.Tune(c)
	}
	if err := applyNetwork(c, m.cfg.Network); err != nil {
		return nil, err
	}
	nt, err := newNetTransport(c)
	if err != nil {
		return nil, err
	}
	c.Transport = &lanTransport{NetTransport: nt, r: m.routes}
	m.mu.Lock()
	m.mlConf = c
	m.mu.Unlock()
	ml, err := memberlist.Create(c)
	if err != nil {
		nt.Shutdown()
	}
	return ml, err
}

// newNetTransport makes memberlist's own transport as memberlist.Create
// would (lanTransport wraps it), on c's bind address and port; port 0
// takes a free one, written back to c.
func newNetTransport(c *memberlist.Config) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{c.BindAddr},
		BindPort:  c.BindPort,
		Logger:    log.New(c.LogOutput, "", log.LstdFlags),
	}
	tries := 1
	if c.BindPort == 0 {
		tries = 10 // TCP and UDP must get the same free port: it may race
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			if c.BindPort == 0 {
				c.BindPort = nt.GetAutoBindPort()
				c.AdvertisePort = c.BindPort
			}
			return nt, nil
		}
	}
	return nil, fmt.Errorf("could not set up network transport: %w", err)
}

// signedMeta is this run's metadata, signed for the address memberlist
// advertises. It is signed on first use after a change, because the
// gossip port is known only once memberlist is being created (it asks
// for the metadata before Create returns).
func (m *Mesh) signedMeta() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.metaBytes == nil {
		if m.mlConf == nil {
			return nil
		}
		m.meta.Gossip = netip.AddrPortFrom(m.cfg.AdvertiseAddr.Unmap(), uint16(m.mlConf.AdvertisePort))
		m.meta.Addrs = m.routes.ownAddrs().metaAddrs()
		b, err := m.meta.Sign(m.member, m.cfg.Identity.Key)
		if err != nil {
			m.log.Error("cannot sign this node's metadata", "err", err)
			return nil
		}
		m.metaBytes = b
	}
	return bytes.Clone(m.metaBytes)
}

// probeGossipPort binds port on TCP and UDP, as memberlist will, and lets
// go at once. It is how Listen knows the port is taken: memberlist formats
// its bind errors with %v (NetTransport: "failed to start TCP listener on
// ...: %v"), which drops the syscall error, and matching its text would
// break with any rewording or locale. Another process may take the port
// between the probe and memberlist's bind; then memberlist fails and
// Listen reports that, which is no worse than not probing. Port 0 needs
// no probe: the kernel picks a free one.
func probeGossipPort(addr netip.Addr, port int) error {
	if port == 0 {
		return nil
	}
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	ln, err := net.Listen("tcp", ap)
	if err != nil {
		return err
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", ap)
	if err != nil {
		return err
	}
	return pc.Close()
}

func listenTCP(addr netip.Addr, port int, fallback bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil && fallback && port != 0 && isAddrInUse(err) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	}
	return ln, err
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
