package netlab

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcpTo connects from one host to addr:port on the other, which listens
// on the wildcard of addr's family; it reports whether the connection
// was made.
func tcpTo(t *testing.T, from, to *Host, addr netip.Addr) bool {
	t.Helper()
	network, wild := "tcp4", "0.0.0.0:0"
	if addr.Is6() {
		network, wild = "tcp6", "[::]:0"
	}
	ln, err := to.Listen(network, wild)
	if err != nil {
		t.Fatalf("listen on %s: %v", to.Name, err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := from.Dial(ctx, network, netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// linkLocal is the host's fe80:: address on iface, zoned.
func linkLocal(t *testing.T, h *Host, iface string) netip.Addr {
	t.Helper()
	var ll netip.Addr
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() && p.Addr().Is6() {
				ll = p.Addr().WithZone(iface)
			}
		}
		return err
	})
	if err != nil || !ll.IsValid() {
		t.Fatalf("%s has no link-local address on %s: %v", h.Name, iface, err)
	}
	return ll
}

// An IPv6-only lab: hosts have their ULA address and no IPv4, reach each
// other on the ULA and on link-local addresses (with the zone), at once.
func TestIPv6OnlyLab(t *testing.T) {
	t.Parallel()
	lab := NewWith(t, 2, Options{IPv6: true, NoIPv4: true})
	a, b := lab.Hosts[0], lab.Hosts[1]
	if a.Addr.IsValid() || b.Addr6 != netip.MustParseAddr("fd99::3") {
		t.Fatalf("addresses: %v %v, %v %v", a.Addr, a.Addr6, b.Addr, b.Addr6)
	}
	if !tcpTo(t, a, b, b.Addr6) {
		t.Errorf("%s does not reach %s's ULA %v", a.Name, b.Name, b.Addr6)
	}
	ll := linkLocal(t, b, "eth0")
	// The zone on the dialling side is its own eth0, by index: Go caches
	// interface names per process, and every namespace has an eth0.
	var idx int
	if err := a.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			idx = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !tcpTo(t, a, b, ll.WithZone(strconv.Itoa(idx))) {
		t.Errorf("%s does not reach %s's link-local %v", a.Name, b.Name, ll)
	}
	out, err := a.lab.ipOutput(context.Background(), "-n", a.NS, "-4", "addr", "show", "dev", "eth0")
	if err != nil || strings.Contains(out, "inet ") {
		t.Errorf("an IPv6-only host has IPv4: %q %v", out, err)
	}
	ll2 := NewWith(t, 1, Options{IPv6: true, LinkLocalOnly: true})
	if ll2.Hosts[0].Addr6.IsValid() || !ll2.Hosts[0].Addr.IsValid() {
		t.Errorf("link-local-only lab host: %v %v", ll2.Hosts[0].Addr, ll2.Hosts[0].Addr6)
	}
}

// A second LAN: a host plugged into both reaches each side; hosts on one
// LAN only do not reach each other.
func TestHostOnTwoLANsLab(t *testing.T) {
	t.Parallel()
	lab := New(t, 3)
	lan2, err := lab.AddLAN()
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	if err := c.Unplug(); err != nil {
		t.Fatal(err)
	}
	c2, err := c.Plug(lan2, "eth1")
	if err != nil {
		t.Fatal(err)
	}
	b2, err := b.Plug(lan2, "eth1")
	if err != nil {
		t.Fatal(err)
	}
	if !lan2.Subnet.Contains(c2) || !lan2.Subnet.Contains(b2) || c2 == b2 {
		t.Fatalf("LAN 2 (%v) addresses %v %v", lan2.Subnet, c2, b2)
	}
	if !tcpTo(t, a, b, b.Addr) || !tcpTo(t, c, b, b2) {
		t.Errorf("the host on both LANs is not reached from each")
	}
	if tcpTo(t, a, c, c2) {
		t.Errorf("%s reaches %s across LANs that are not connected", a.Name, c.Name)
	}
}

// Addresses come and go on a running host; a virtual bridge has carrier.
func TestAddressesChangeOnARunningHost(t *testing.T) {
	t.Parallel()
	lab := New(t, 2)
	a, b := lab.Hosts[0], lab.Hosts[1]
	if err := b.FlushAddrs("eth0", false); err != nil {
		t.Fatal(err)
	}
	if tcpTo(t, a, b, b.Addr) {
		t.Fatal("reached a host whose addresses were flushed")
	}
	if err := b.AddAddr("eth0", netip.PrefixFrom(b.Addr, 24)); err != nil {
		t.Fatal(err)
	}
	// The first try may meet the neighbour entry the flushed address
	// left failed.
	back := false
	for deadline := time.Now().Add(5 * time.Second); !back && time.Now().Before(deadline); {
		back = tcpTo(t, a, b, b.Addr)
	}
	if !back {
		out, _ := b.lab.ipOutput(context.Background(), "-n", b.NS, "addr", "show", "dev", "eth0")
		t.Fatalf("the address added back does not answer:\n%s", out)
	}
	if err := b.EnableIPv6("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr("eth0", netip.MustParsePrefix("fd99::77/64")); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("eth0", netip.MustParsePrefix("fd99::76/64")); err != nil {
		t.Fatal(err)
	}
	if !tcpTo(t, a, b, netip.MustParseAddr("fd99::77")) {
		t.Error("an IPv6 address added to a running host does not answer")
	}
	if err := a.AddVirtual("docker0", netip.MustParsePrefix("172.17.0.1/16")); err != nil {
		t.Fatal(err)
	}
	out, err := a.lab.ipOutput(context.Background(), "-n", a.NS, "-o", "link", "show", "dev", "docker0")
	if err != nil || !strings.Contains(out, "state UP") || !strings.Contains(out, "MULTICAST") {
		t.Errorf("docker0: %q %v", out, err)
	}
}
