package mesh

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// prefixes reads "addr%iface/bits" (the zone names the interface).
func prefixes(ss ...string) []IfaceAddr {
	out := make([]IfaceAddr, len(ss))
	for i, s := range ss {
		a, bits, _ := strings.Cut(s, "/")
		ip := netip.MustParseAddr(a)
		n, _ := strconv.Atoi(bits)
		out[i] = IfaceAddr{Prefix: netip.PrefixFrom(ip, n), Iface: ip.Zone()}
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// Which of a peer's addresses this node uses, on the LANs it is on.
func TestPickAddr(t *testing.T) {
	a := netip.MustParseAddr
	twoLANs := &ownAddrs{prefixes: prefixes("10.99.1.3/24", "fd99:0:0:1::3/64", "fe80::3%eth1/64")}
	v6only := &ownAddrs{prefixes: prefixes("fd99::2/64", "fe80::2%eth0/64")}
	llOnly := &ownAddrs{prefixes: prefixes("fe80::2%eth0/64")}
	llTwo := &ownAddrs{prefixes: prefixes("fe80::2%eth0/64", "fe80::9%eth1/64")}
	for _, c := range []struct {
		name   string
		own    *ownAddrs
		gossip netip.Addr
		listed []netip.Addr
		zones  map[netip.Addr]string
		want   netip.Addr
	}{
		{"memberlist's own address on our LAN", twoLANs, a("10.99.1.7"), addrs("10.99.1.7", "10.99.0.7"), nil, a("10.99.1.7")},
		{"a host on two LANs, reached on the one we share", twoLANs, a("10.99.0.3"), addrs("10.99.0.3", "10.99.1.2"), nil, a("10.99.1.2")},
		{"IPv6 ULA on our subnet", v6only, a("10.5.0.1"), addrs("10.5.0.1", "fd99::3"), nil, a("fd99::3")},
		{"stale memberlist address (DHCP renewed)", twoLANs, a("10.99.1.7"), addrs("10.99.1.8"), nil, a("10.99.1.8")},
		{"link-local with our only link's zone", llOnly, a("fe80::3"), addrs("fe80::3"), nil, a("fe80::3%eth0")},
		{"link-local on two links: the zone discovery heard", llTwo, a("fe80::3"), addrs("fe80::3"), map[netip.Addr]string{a("fe80::3"): "eth1"}, a("fe80::3%eth1")},
		{"link-local on two links, zone unknown: memberlist's", llTwo, a("fe80::3"), addrs("fe80::3"), nil, a("fe80::3")},
		{"a link-local address of a peer on another LAN is not guessed on", llOnly, a("10.99.1.2"), addrs("10.99.1.2", "fe80::3"), nil, a("10.99.1.2")},
		{"no shared LAN: memberlist's", twoLANs, a("192.168.5.5"), addrs("192.168.5.5"), nil, a("192.168.5.5")},
		{"started before its network: not loopback", twoLANs, a("127.0.0.1"), addrs("192.168.5.5"), nil, a("192.168.5.5")},
		{"no addresses of our own (bound to one)", &ownAddrs{}, a("127.0.0.1"), addrs("10.99.1.2"), nil, a("127.0.0.1")},
	} {
		got := c.own.pick(c.gossip, c.listed, func(x netip.Addr) string { return c.zones[x] })
		if got != c.want {
			t.Errorf("%s: picked %v, want %v", c.name, got, c.want)
		}
	}
}

// The metadata lists addresses on a subnet first, link-local last,
// without zones or repeats, and no more than fit.
func TestMetaAddrsOrderAndCap(t *testing.T) {
	own := &ownAddrs{prefixes: prefixes("fe80::1%eth0/64", "10.0.0.1/24", "fd00::1/64", "10.0.0.1/24")}
	got := own.metaAddrs()
	want := addrs("10.0.0.1", "fd00::1", "fe80::1")
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("listed %v, want %v first", got, want)
		}
	}
	if got[len(want)].IsValid() {
		t.Fatalf("listed %v: more than %v", got, want)
	}
	var many []IfaceAddr
	for i := range 20 {
		many = append(many, IfaceAddr{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 1}), 24), Iface: "eth0"})
	}
	if got := (&ownAddrs{prefixes: many}).metaAddrs(); !got[MaxMetaAddrs-1].IsValid() {
		t.Fatalf("20 addresses listed as %v", got)
	}
}

// memberlist's packets to a run go where the peer table picked; a join by
// address to a link-local peer gets the zone discovery heard it on.
func TestRoutes(t *testing.T) {
	r := newRoutes(prefixes("10.99.1.3/24", "fe80::3%eth1/64", "fe80::4%eth0/64"))
	r.setRun("run-a", netip.MustParseAddr("10.99.1.2"))
	if got := r.route("run-a", "10.99.0.2:7480"); got != "10.99.1.2:7480" {
		t.Errorf("to run-a: %s", got)
	}
	if got := r.route("", "10.99.0.2:7480"); got != "10.99.0.2:7480" {
		t.Errorf("a join by address: %s", got)
	}
	if got := r.route("", "[fe80::9]:7480"); got != "[fe80::9]:7480" {
		t.Errorf("link-local, zone unknown on two links: %s", got)
	}
	r.learnZone(netip.MustParseAddr("fe80::9%eth1"))
	if got := r.route("", "[fe80::9]:7480"); got != "[fe80::9%eth1]:7480" {
		t.Errorf("link-local heard on eth1: %s", got)
	}
	r.keepRuns(map[string]bool{})
	if got := r.route("run-a", "10.99.0.2:7480"); got != "10.99.0.2:7480" {
		t.Errorf("a forgotten run: %s", got)
	}
	for range maxZones + 10 {
		r.learnZone(netip.AddrFrom16([16]byte{0xfe, 0x80, 15: 1}).WithZone("eth0"))
	}
	r.mu.Lock()
	n := len(r.zones)
	r.mu.Unlock()
	if n > maxZones {
		t.Errorf("%d zones kept", n)
	}
}
