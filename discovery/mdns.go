package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/mdns"
)

// ServiceName is the DNS-SD service type lanchat advertises and browses,
// in the domain Domain.
const ServiceName = "_lanchat._tcp"

// Domain is the mDNS domain.
const Domain = "local"

// instanceSuffix ends the name of every answer that is accepted.
const instanceSuffix = "." + ServiceName + "." + Domain + "."

// MaxQueryWindow is the longest a query listens for answers: they come
// within milliseconds of a query, so listening longer would gain nothing.
// A query ends early when Run's ctx ends.
const MaxQueryWindow = time.Second

// entryBuffer is how many answers may wait for the found callback before
// new ones are dropped (they come again: a later query, or half a TTL on).
const entryBuffer = 64

var (
	// ErrNoMulticast is wrapped by the error logged when the system has no
	// multicast route (the kernel answers "no such device"): discovery is
	// off until one appears, and peers must be reached with --join.
	ErrNoMulticast = errors.New("no multicast route")
	// ErrRunning is returned by Run when the same MDNS is already running.
	ErrRunning = errors.New("discovery: already running")
)

// Config configures an MDNS. The zero value of every field but Self means
// its default (see DefaultConfig).
type Config struct {
	// Self is what to advertise. Nil: browse only (a one-shot command that
	// must not appear as a peer). When Self.Addrs is empty the unicast
	// addresses of Iface (or of every interface that is up) are used.
	Self *Candidate
	// Iface is the interface to send and receive multicast on; nil means
	// the system's default multicast interface.
	Iface *net.Interface
	// QuickQueries is how many queries are sent QuickInterval apart at
	// start, and again when discovery starts working after a failure.
	// Negative means one query at start, then SlowInterval.
	QuickQueries int
	// QuickInterval is the gap between quick queries.
	QuickInterval time.Duration
	// SlowInterval is the gap between queries after the quick ones, and
	// between retries while discovery fails.
	SlowInterval time.Duration
	// MaxInterval caps the gap between queries while Peers reports live
	// peers: from SlowInterval it doubles after each query up to this
	// (RFC 6762 §5.2), since gossip, not mDNS, then keeps the cluster
	// together. Zero means an hour.
	MaxInterval time.Duration
	// Peers, if set, reports how many live peers this node knows of by
	// other means (mesh gossip). While it is 0 queries stay at
	// SlowInterval; when it drops to 0 from more (cable out, Wi-Fi gone)
	// the quick queries start over. Nil means always 0. It is called from
	// Run's goroutine about once a second and must be cheap.
	Peers func() int
	// QueryWindow is how long each query listens for answers. Zero means
	// four fifths of the interval that follows the query; it is capped at
	// MaxQueryWindow.
	QueryWindow time.Duration
	// Logger receives the package's logs, and the mdns library's at debug
	// level. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config that browses only, on the default
// interface, with three quick queries 250 ms apart, then one every 10 s.
func DefaultConfig() Config {
	return Config{
		QuickQueries:  3,
		QuickInterval: 250 * time.Millisecond,
		SlowInterval:  10 * time.Second,
		MaxInterval:   time.Hour,
	}
}

// Browser is the small interface the rest of lanchat uses, so another mDNS
// library could replace this one.
type Browser interface {
	// Run advertises (when the config has a Self) and browses until ctx
	// ends, calling found for every valid candidate answer, from one
	// goroutine, in the order answers arrive. found must return quickly.
	// Run returns nil when ctx ends.
	Run(ctx context.Context, found func(Candidate)) error
	// Refresh asks for one extra query soon. It never blocks.
	Refresh()
}

// MDNS is a Browser speaking mDNS itself (wire.go), with the records of
// a github.com/hashicorp/mdns zone.
type MDNS struct {
	cfg     Config
	log     *slog.Logger
	zone    *mdns.MDNSService // the records advertised; nil when browsing only
	selfID  string            // Self.ID upper-cased; "" when browsing only
	refresh chan struct{}     // buffered 1: a query is wanted soon
	running atomic.Bool       // set while Run runs
	known   knownAnswers      // instances heard of, for the known-answer lists of queries
}

var _ Browser = (*MDNS)(nil)

// New checks cfg and returns an MDNS ready to Run. It starts nothing.
func New(cfg Config) (*MDNS, error) {
	def := DefaultConfig()
	switch {
	case cfg.QuickQueries == 0:
		cfg.QuickQueries = def.QuickQueries
	case cfg.QuickQueries < 0:
		cfg.QuickQueries = 0
	}
	if cfg.QuickInterval <= 0 {
		cfg.QuickInterval = def.QuickInterval
	}
	if cfg.SlowInterval <= 0 {
		cfg.SlowInterval = def.SlowInterval
	}
	if cfg.MaxInterval <= 0 {
		cfg.MaxInterval = def.MaxInterval
	}
	cfg.MaxInterval = max(cfg.MaxInterval, cfg.SlowInterval)
	if cfg.QueryWindow < 0 {
		cfg.QueryWindow = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &MDNS{
		cfg:     cfg,
		log:     cfg.Logger,
		refresh: make(chan struct{}, 1),
	}
	if cfg.Self != nil {
		self := *cfg.Self
		self.Addrs = nil
		if _, err := EncodeTXT(self); err != nil {
			return nil, fmt.Errorf("discovery: advertise: %w", err)
		}
		self.Addrs = append([]netip.Addr(nil), cfg.Self.Addrs...)
		if len(self.Addrs) == 0 {
			self.Addrs = fitAddrs(self, localAddrs(cfg.Iface))
			if len(self.Addrs) == 0 {
				return nil, errors.New("discovery: no address to advertise")
			}
		}
		txt, err := EncodeTXT(self)
		if err != nil {
			return nil, fmt.Errorf("discovery: advertise: %w", err)
		}
		m.selfID, _ = NormalizeID(self.ID)
		ips := make([]net.IP, 0, len(self.Addrs))
		for _, a := range cleanAddrs(self.Addrs) {
			ips = append(ips, net.IP(a.AsSlice()))
		}
		name := strings.ToLower(m.selfID)
		// Always pass the addresses: without them the library resolves the
		// host name. The host name is the id, not os.Hostname, which nodes
		// in network namespaces share.
		m.zone, err = mdns.NewMDNSService(name, ServiceName, Domain+".", name+"."+Domain+".", int(self.TLSPort), ips, txt)
		if err != nil {
			return nil, fmt.Errorf("discovery: advertise: %w", err)
		}
	}
	return m, nil
}

// Refresh asks for one extra query soon. It never blocks.
func (m *MDNS) Refresh() {
	select {
	case m.refresh <- struct{}{}:
	default:
	}
}

// Run advertises (when the config has a Self) and browses until ctx ends,
// calling found for every valid candidate answer, from one goroutine, in
// the order answers arrive. It keeps running when multicast fails, logging
// once and retrying every SlowInterval. It returns nil when ctx ends, after
// saying goodbye and after every goroutine it started has finished (within
// MaxQueryWindow).
func (m *MDNS) Run(ctx context.Context, found func(Candidate)) error {
	if found == nil {
		return errors.New("discovery: run needs a found function")
	}
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)

	// Answers (to queries, and announcements heard) go to one goroutine
	// of their own, which reads them as they arrive for the whole of Run.
	answers := make(chan answer, entryBuffer)
	var reader sync.WaitGroup
	reader.Go(func() { m.deliver(ctx, answers, found) })

	var rsp *responder // nil until it starts

	// Queries run in goroutines of their own, so that a Refresh need not
	// wait for the window of the query before it.
	var queries sync.WaitGroup
	results := make(chan error, maxInFlight) // one per finished query
	inFlight := 0
	refreshPending := false // a Refresh came while maxInFlight queries ran

	defer func() {
		queries.Wait()
		if rsp != nil {
			rsp.goodbye()
			rsp.close()
		}
		close(answers) // nothing sends any more
		reader.Wait()
	}()

	var h health
	now := time.Now()
	sched := newSchedule(m.cfg.QuickQueries, m.cfg.QuickInterval, m.cfg.SlowInterval, m.cfg.MaxInterval, now)
	timer := time.NewTimer(0)
	defer timer.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	netPrint := netFingerprint(m.cfg.Iface)
	lastNetCheck := now

	// launch starts the responder if it is wanted and not running (and
	// announces this node), and sends a query with the window of interval.
	launch := func(interval time.Duration) {
		if m.zone != nil && rsp == nil {
			r, err := m.startResponder(answers)
			if err != nil {
				err = m.classify(fmt.Errorf("start mdns responder: %w", err))
				results <- err // room is left: inFlight < maxInFlight
				inFlight++
				if errors.Is(err, ErrNoMulticast) {
					return // the query would fail alike
				}
				// Browse all the same: once this node joins a peer it
				// found, gossip makes it known to the others.
			} else {
				rsp = r
				m.log.Debug("discovery: responder started", "instance", m.zone.Instance, "iface", m.ifaceName())
				rsp.announce()
			}
		}
		inFlight++
		window := m.window(interval)
		queries.Go(func() { results <- m.browse(ctx, answers, window) })
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			now := time.Now()
			interval := sched.fire(now, m.peers())
			timer.Reset(interval)
			if inFlight+1 < maxInFlight {
				launch(interval)
			}
		case now := <-poll.C:
			restart := sched.peers(m.peers(), now)
			if now.Sub(lastNetCheck) >= netCheckInterval {
				lastNetCheck = now
				if p := netFingerprint(m.cfg.Iface); p != netPrint {
					netPrint = p
					m.log.Info("network changed: querying and announcing again on mDNS")
					sched.restart(now)
					restart = true
					if rsp != nil {
						rsp.announce()
					}
				}
			}
			if restart {
				timer.Reset(0)
			}
		case <-m.refresh:
			if inFlight+1 < maxInFlight {
				launch(m.cfg.SlowInterval)
			} else {
				refreshPending = true
			}
		case err := <-results:
			inFlight--
			if ctx.Err() != nil {
				continue
			}
			if err == nil {
				if m.zone == nil || rsp != nil {
					m.succeeded(&h)
				}
			} else {
				m.failed(&h, err)
				if errors.Is(err, ErrNoMulticast) && rsp != nil {
					// Its group membership may be gone with the
					// route: start it afresh once multicast works.
					rsp.close()
					rsp = nil
				}
				sched.failed(time.Now())
				timer.Reset(m.cfg.SlowInterval)
			}
			if refreshPending && inFlight+1 < maxInFlight {
				refreshPending = false
				launch(m.cfg.SlowInterval)
			}
		}
	}
}

// Polling: how often the live-peer hook is asked, and how often the
// interfaces' addresses are compared with the last ones seen.
const (
	pollInterval     = time.Second
	netCheckInterval = 3 * time.Second
)

// peers asks the Peers hook.
func (m *MDNS) peers() int {
	if m.cfg.Peers == nil {
		return 0
	}
	return m.cfg.Peers()
}

// maxInFlight bounds the results Run is waiting for: queries running (each
// holds a socket for at most MaxQueryWindow) and failed responder starts.
const maxInFlight = 8

// window is how long a query followed by interval listens.
func (m *MDNS) window(interval time.Duration) time.Duration {
	w := m.cfg.QueryWindow
	if w == 0 {
		w = interval * 4 / 5
	}
	return max(min(w, MaxQueryWindow), time.Millisecond)
}

// browse sends one query and listens for window. It asks over IPv4 only: a
// responder listening on both families would answer twice. IPv6 is the
// fallback when IPv4 fails.
func (m *MDNS) browse(ctx context.Context, out chan<- answer, window time.Duration) error {
	if m.cfg.Iface != nil && !hasIPv4(m.cfg.Iface) {
		// An IPv6-only link: an IPv4 query could leave with no source
		// address and be heard by no one, and never fail over.
		if err := m.query(ctx, out, window, true); err != nil && ctx.Err() == nil {
			return m.classify(fmt.Errorf("send mdns query: %w", err))
		}
		return nil
	}
	err := m.query(ctx, out, window, false)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if err6 := m.query(ctx, out, window, true); err6 == nil || ctx.Err() != nil {
		return nil
	}
	return m.classify(fmt.Errorf("send mdns query: %w", err))
}

// hasIPv4 reports whether ifi has an IPv4 address.
func hasIPv4(ifi *net.Interface) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return true // unknown: IPv4 first, as ever
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return true
		}
	}
	return false
}

// deliver turns answers into candidates and hands the valid ones to found.
func (m *MDNS) deliver(ctx context.Context, answers <-chan answer, found func(Candidate)) {
	for a := range answers {
		name, c, err := m.candidate(a)
		if err != nil {
			m.log.Debug("discovery: ignoring answer", "name", name, "err", err)
			continue
		}
		if c.ID == m.selfID || ctx.Err() != nil {
			continue
		}
		found(c)
	}
}

// candidate checks one answer and returns the candidate it describes.
func (m *MDNS) candidate(a answer) (string, Candidate, error) {
	name := a.name
	if len(name) > 300 {
		name = name[:300] + "…"
	}
	if len(name) <= len(instanceSuffix) || !strings.HasSuffix(strings.ToLower(name), instanceSuffix) {
		return name, Candidate{}, errors.New("not a lanchat service")
	}
	if a.txt == nil {
		return name, Candidate{}, errors.New("answer has no TXT record")
	}
	c, err := ParseTXT(a.txt)
	if err != nil {
		return name, Candidate{}, err
	}
	zone := ""
	if m.cfg.Iface != nil {
		zone = m.cfg.Iface.Name
	}
	for i, ad := range c.Addrs {
		if ad.Is6() && ad.IsLinkLocalUnicast() {
			c.Addrs[i] = ad.WithZone(zone)
		}
	}
	for _, ad := range a.addrs {
		c.Addrs = appendAddr(c.Addrs, ad)
	}
	if len(c.Addrs) == 0 {
		return name, Candidate{}, errors.New("answer gives no address")
	}
	return name, c, nil
}

// appendAddr appends a to addrs unless it is there already or cannot be
// reached.
func appendAddr(addrs []netip.Addr, a netip.Addr) []netip.Addr {
	if !validAddr(a) {
		return addrs
	}
	for _, b := range addrs {
		if a == b {
			return addrs
		}
	}
	return append(addrs, a)
}

// health remembers how the last attempts went, so that a failure is logged
// once, not at every retry.
type health struct {
	failing bool   // the last attempt failed
	noRoute bool   // the no-multicast warning was logged for this outage
	lastErr string // text of the last error warned about
}

func (m *MDNS) failed(h *health, err error) {
	switch {
	case errors.Is(err, ErrNoMulticast):
		if !h.noRoute {
			m.log.Warn(fmt.Sprintf("no multicast route on %s: mDNS discovery is off; reach peers with --join", m.ifaceName()), "err", err)
			h.noRoute = true
			h.lastErr = err.Error()
		}
	case err.Error() != h.lastErr:
		m.log.Warn("mDNS discovery failed; retrying", "every", m.cfg.SlowInterval, "err", err)
		h.lastErr = err.Error()
	}
	m.log.Debug("discovery: attempt failed", "retry_in", m.cfg.SlowInterval, "err", err)
	h.failing = true
}

func (m *MDNS) succeeded(h *health) {
	if h.failing {
		m.log.Info(fmt.Sprintf("mDNS discovery is working again on %s", m.ifaceName()))
	}
	*h = health{}
}

func (m *MDNS) ifaceName() string {
	if m.cfg.Iface == nil {
		return "the default interface"
	}
	return m.cfg.Iface.Name
}

// classify wraps err with ErrNoMulticast when the cause is a missing
// multicast route. The library does not always keep the cause, so a probe
// asks the kernel again.
func (m *MDNS) classify(err error) error {
	if noRoute(err) {
		return fmt.Errorf("%w: %w", ErrNoMulticast, err)
	}
	if perr := probeMulticast(m.cfg.Iface); perr != nil && noRoute(perr) {
		return fmt.Errorf("%w: %w: %w", ErrNoMulticast, err, perr)
	}
	return err
}

func noRoute(err error) bool {
	if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "no such device") || strings.Contains(s, "network is unreachable")
}

// probeMulticast joins the mDNS group as the library does, and reports why
// neither IPv4 nor IPv6 could.
func probeMulticast(iface *net.Interface) error {
	c, err := net.ListenMulticastUDP("udp4", iface, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	if err == nil {
		c.Close()
		return nil
	}
	c6, err6 := net.ListenMulticastUDP("udp6", iface, &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353})
	if err6 == nil {
		c6.Close()
		return nil
	}
	return err
}

// localAddrs returns the unicast addresses of iface, or of every interface
// that is up when iface is nil: IPv4 first, then IPv6, leaving out
// link-local IPv6 (meaningless without a zone) and loopback addresses
// unless there is nothing else.
func localAddrs(iface *net.Interface) []netip.Addr {
	var ifaces []net.Interface
	if iface != nil {
		ifaces = []net.Interface{*iface}
	} else {
		ifaces, _ = net.Interfaces()
	}
	var v4, v6, loop []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			switch {
			case !validAddr(ip), ip.IsLinkLocalUnicast():
			case ip.IsLoopback():
				loop = append(loop, ip)
			case ip.Is4():
				v4 = append(v4, ip)
			default:
				v6 = append(v6, ip)
			}
		}
	}
	out := append(v4, v6...)
	if len(out) == 0 {
		out = loop
	}
	return cleanAddrs(out)
}

// fitAddrs returns the longest prefix of addrs that c can advertise.
func fitAddrs(c Candidate, addrs []netip.Addr) []netip.Addr {
	addrs = addrs[:min(len(addrs), MaxAddrs)]
	for len(addrs) > 0 {
		c.Addrs = addrs
		if _, err := EncodeTXT(c); err == nil {
			break
		}
		addrs = addrs[:len(addrs)-1]
	}
	return addrs
}
