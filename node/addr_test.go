package node

import (
	"net/netip"
	"testing"
)

// Which address of a candidate mDNS heard on one interface is joined.
func TestPickAddrOnAnInterface(t *testing.T) {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	for _, c := range []struct {
		name  string
		addrs []netip.Addr
		own   []netip.Prefix
		want  netip.Addr
		ok    bool
	}{
		{"on our subnet", []netip.Addr{a("192.168.9.9"), a("10.99.0.3")}, []netip.Prefix{p("10.99.0.2/24")}, a("10.99.0.3"), true},
		{"ULA on our subnet", []netip.Addr{a("fe80::3%eth0"), a("fd99::3")}, []netip.Prefix{p("fd99::2/64"), p("fe80::2/64")}, a("fd99::3"), true},
		{"link-local, zoned by discovery", []netip.Addr{a("fe80::3%eth0")}, []netip.Prefix{p("fe80::2/64")}, a("fe80::3%eth0"), true},
		{"another subnet of our family", []netip.Addr{a("fd00::1"), a("192.168.9.9")}, []netip.Prefix{p("10.99.0.2/24")}, a("192.168.9.9"), true},
		{"nothing of our family", []netip.Addr{a("fd00::1")}, []netip.Prefix{p("10.99.0.2/24")}, netip.Addr{}, false},
		{"loopback and multicast are never joined", []netip.Addr{a("127.0.0.1"), a("224.0.0.251")}, []netip.Prefix{p("10.99.0.2/24")}, netip.Addr{}, false},
	} {
		got, ok := pickAddr(c.addrs, c.own)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestVirtualInterfaceNames(t *testing.T) {
	for _, name := range []string{"docker0", "br-1a2b", "virbr0", "veth12", "tun0", "tap1", "wg0", "tailscale0", "zt3", "utun2", "ppp0", "vmnet8", "vboxnet0", "cni0", "flannel.1", "lxcbr0"} {
		if !virtualIface(name) {
			t.Errorf("%s is not taken for virtual", name)
		}
	}
	for _, name := range []string{"eth0", "enp3s0", "wlan0", "wlp2s0", "en0", "bond0"} {
		if virtualIface(name) {
			t.Errorf("%s is taken for virtual", name)
		}
	}
}

// The primary (advertised) address: IPv4 first, then ULA or global, then
// link-local, without its zone.
func TestPrimaryAddress(t *testing.T) {
	p := netip.MustParsePrefix
	for _, c := range []struct {
		set  addrSet
		want string
	}{
		{addrSet{Used: []lanIface{{Name: "eth0", Prefixes: []netip.Prefix{p("fd99::2/64"), p("fe80::2/64")}}, {Name: "eth1", Prefixes: []netip.Prefix{p("10.0.0.2/24")}}}}, "10.0.0.2"},
		{addrSet{Used: []lanIface{{Name: "eth0", Prefixes: []netip.Prefix{p("fe80::2/64")}}, {Name: "eth1", Prefixes: []netip.Prefix{p("2001:db8::2/64")}}}}, "2001:db8::2"},
		{addrSet{Used: []lanIface{{Name: "eth0", Prefixes: []netip.Prefix{p("fe80::2/64")}}}}, "fe80::2"},
	} {
		a, _, ok := c.set.primary()
		if !ok || a.String() != c.want {
			t.Errorf("primary of %+v: %v, want %s", c.set, a, c.want)
		}
	}
	if _, _, ok := (addrSet{}).primary(); ok {
		t.Error("an empty set has a primary address")
	}
}
