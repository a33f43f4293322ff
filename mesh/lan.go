package mesh

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// A node on several LANs, or on IPv6, has several addresses, and
// memberlist knows one per node (the one each run advertises at start,
// for its whole life). The rest of them travel in the signed metadata
// (Meta.Addrs), and this file decides, from this node's own addresses,
// which of a peer's addresses this node uses: for its TLS streams (the
// peer table's Addr) and for memberlist's own packets and streams to
// the peer (lanTransport). See the package doc, "Several addresses".

// IfaceAddr is one address of this node, with its prefix length and
// the interface it is on (a link-local address's zone).
type IfaceAddr struct {
	Prefix netip.Prefix
	Iface  string
}

// ownAddrs is this node's LAN addresses; replaced whole when the
// interfaces change.
type ownAddrs struct {
	prefixes []IfaceAddr
}

// llZone is the zone for a peer's link-local address when this node has
// exactly one interface with a link-local address; "" otherwise (two
// links: which one the peer is on cannot be told from the address).
func (o *ownAddrs) llZone() string {
	zone := ""
	for _, p := range o.prefixes {
		if a := p.Prefix.Addr(); a.Is6() && a.IsLinkLocalUnicast() && p.Iface != "" {
			if zone != "" && zone != p.Iface {
				return ""
			}
			zone = p.Iface
		}
	}
	return zone
}

// onLink reports whether a is on a subnet of one of this node's
// interfaces (link-local IPv6 aside: every link has fe80::/64).
func (o *ownAddrs) onLink(a netip.Addr) bool {
	for _, p := range o.prefixes {
		if p.Prefix.Addr().IsLinkLocalUnicast() {
			continue
		}
		if p.Prefix.Contains(a.WithZone("")) {
			return true
		}
	}
	return false
}

// pick chooses which of a peer's addresses to use: gossip is the one
// memberlist has for it, listed the ones its signed metadata names. The
// first one on a subnet this node is on wins, memberlist's first unless
// stale; then a
// link-local one, when its zone is known: heard by mDNS on one of our
// interfaces, or, for a peer memberlist knows by a link-local address,
// our only link; then memberlist's, unless it
// is loopback (a peer that started before its network came up) and the
// peer lists another. A node without addresses of its own (bound to one
// address, as tests are) keeps memberlist's.
func (o *ownAddrs) pick(gossip netip.Addr, listed []netip.Addr, zones func(netip.Addr) string) netip.Addr {
	if o == nil || len(o.prefixes) == 0 {
		return gossip
	}
	// memberlist's address is the run's from its start; one its current
	// list no longer holds is stale (a DHCP lease renewed to another
	// address): the list comes first then.
	all := append([]netip.Addr{gossip}, listed...)
	if len(listed) > 0 && !slices.Contains(listed, gossip) {
		all = append(slices.Clone(listed), gossip)
	}
	for _, a := range all {
		if a.IsValid() && !a.IsLinkLocalUnicast() && o.onLink(a) {
			return a
		}
	}
	for _, a := range all {
		if a.Is6() && a.IsLinkLocalUnicast() {
			if a.Zone() != "" {
				return a
			}
			z := ""
			if zones != nil {
				z = zones(a)
			}
			if z == "" && gossip.IsLinkLocalUnicast() {
				// A peer of link-local addresses only: on our only link,
				// if we have one. Otherwise a link-local address says
				// nothing of where the peer is: every link has fe80::/64.
				z = o.llZone()
			}
			if z != "" {
				return a.WithZone(z)
			}
		}
	}
	if gossip.IsLoopback() && len(listed) > 0 {
		return listed[0]
	}
	return gossip
}

// metaAddrs is what this node lists in its metadata: its addresses
// without zones, at most MaxMetaAddrs, those on a subnet (IPv4, ULA,
// global) before link-local ones.
func (o *ownAddrs) metaAddrs() [MaxMetaAddrs]netip.Addr {
	var out [MaxMetaAddrs]netip.Addr
	n := 0
	for _, ll := range []bool{false, true} {
		for _, p := range o.prefixes {
			a := p.Prefix.Addr().WithZone("").Unmap()
			if a.IsLinkLocalUnicast() != ll || !validMetaAddr(a) || n == len(out) {
				continue
			}
			dup := false
			for _, b := range out[:n] {
				dup = dup || a == b
			}
			if !dup {
				out[n] = a
				n++
			}
		}
	}
	return out
}

// has reports whether a (an accepted connection's local address) is one
// of this node's, or loopback.
func (o *ownAddrs) has(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range o.prefixes {
		if p.Prefix.Addr() == a.WithZone("") {
			return true
		}
	}
	return false
}

// maxZones bounds the link-local addresses whose interface discovery
// told (a stranger on the LAN can make up any number).
const maxZones = 256

// routes is what lanTransport reads: the address chosen for each run
// (memberlist node name), and the interface of link-local addresses
// discovery heard. It has its own lock, never held while calling out:
// memberlist calls the transport under its own locks.
type routes struct {
	mu    sync.Mutex
	runs  map[string]netip.Addr // member name → address picked
	zones map[netip.Addr]string // link-local address (no zone) → interface
	own   *ownAddrs
}

func newRoutes(own []IfaceAddr) *routes {
	return &routes{runs: make(map[string]netip.Addr), zones: make(map[netip.Addr]string), own: &ownAddrs{prefixes: own}}
}

func (r *routes) setOwn(p []IfaceAddr) {
	r.mu.Lock()
	r.own = &ownAddrs{prefixes: append([]IfaceAddr(nil), p...)}
	r.mu.Unlock()
}

func (r *routes) ownAddrs() *ownAddrs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own
}

// zone is the interface a link-local address was heard on, if known.
func (r *routes) zone(a netip.Addr) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.zones[a.WithZone("")]
}

// learnZone remembers the interface of a zoned link-local address.
func (r *routes) learnZone(a netip.Addr) {
	if !a.Is6() || !a.IsLinkLocalUnicast() || a.Zone() == "" {
		return
	}
	r.mu.Lock()
	if len(r.zones) >= maxZones {
		clear(r.zones)
	}
	r.zones[a.WithZone("")] = a.Zone()
	r.mu.Unlock()
}

// setRun records the address picked for a run; an invalid one forgets it.
func (r *routes) setRun(member string, a netip.Addr) {
	r.mu.Lock()
	if a.IsValid() {
		r.runs[member] = a
	} else {
		delete(r.runs, member)
	}
	r.mu.Unlock()
}

// keepRuns forgets every run not in keep.
func (r *routes) keepRuns(keep map[string]bool) {
	r.mu.Lock()
	for k := range r.runs {
		if !keep[k] {
			delete(r.runs, k)
		}
	}
	r.mu.Unlock()
}

// route rewrites a "host:port" memberlist is about to use for run name:
// to the address picked for the run, else (a join, by address only)
// giving a link-local address its zone.
func (r *routes) route(name, addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	r.mu.Lock()
	picked, ok := r.runs[name]
	zone := r.zones[ap.Addr().WithZone("")]
	own := r.own
	r.mu.Unlock()
	if name != "" && ok && picked.IsValid() {
		return netip.AddrPortFrom(picked, ap.Port()).String()
	}
	if a := ap.Addr(); a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
		if zone == "" {
			zone = own.llZone()
		}
		if zone != "" {
			return netip.AddrPortFrom(a.WithZone(zone), ap.Port()).String()
		}
	}
	return addr
}

// lanTransport is memberlist's own network transport, with the address
// of each packet and stream to a known run replaced by the one picked
// for it: memberlist would use the single address the run advertised,
// which a peer on another of its LANs cannot reach.
type lanTransport struct {
	*memberlist.NetTransport
	r *routes
}

var _ memberlist.NodeAwareTransport = (*lanTransport)(nil)

func (t *lanTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	a.Addr = t.r.route(a.Name, a.Addr)
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *lanTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	a.Addr = t.r.route(a.Name, a.Addr)
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

func (t *lanTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.NetTransport.WriteTo(b, t.r.route("", addr))
}

func (t *lanTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.NetTransport.DialTimeout(t.r.route("", addr), timeout)
}
