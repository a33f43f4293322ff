package node

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"lanchat/mesh"
)

// chooseAddr picks the address memberlist advertises (the node's
// primary address) and its interface; scanInterfaces has the whole set.
//
// With bind set, that address is used (an unspecified bind address still
// needs a LAN address to advertise). Otherwise it is the primary address
// of the set (see addrSet.primary); with no interface in the set, one
// whose cable is not plugged in yet (with a warning: it may come); with
// none of those either, loopback, and it says so: the node then works
// only on this machine until an interface comes up (the node looks again
// every few seconds).
func chooseAddr(bind string, named []string) (addr netip.Addr, ifi *net.Interface, warning string, err error) {
	if bind != "" {
		a, err := netip.ParseAddr(bind)
		if err != nil {
			return netip.Addr{}, nil, "", &ConfigError{Field: "Bind", Err: fmt.Errorf("%q is not an IP address", bind)}
		}
		if !a.IsUnspecified() {
			ifi, _ := interfaceOf(a)
			return a, ifi, "", nil
		}
	}
	set, err := scanInterfaces(named)
	if err != nil {
		return netip.Addr{}, nil, "", err
	}
	if a, name, ok := set.primary(); ok {
		ifi, _ := net.InterfaceByName(name)
		return a, ifi, "", nil
	}
	for _, u := range set.unplugged {
		if a, ok := primaryOf(u.Prefixes); ok {
			ifi, _ := net.InterfaceByName(u.Name)
			return a, ifi, fmt.Sprintf("%s has no link yet; using %s and waiting for the network", u.Name, a), nil
		}
	}
	lo := netip.MustParseAddr("127.0.0.1")
	return lo, nil, "no LAN interface found: listening on 127.0.0.1, reachable from this machine only", nil
}

// lanIface is one interface of the address set and its addresses:
// IPv4 (private or global), IPv6 ULA and global, and IPv6 link-local
// (whose zone is Name).
type lanIface struct {
	Name     string
	Index    int
	Prefixes []netip.Prefix
}

// skippedIface is an interface left out of the set, and why.
type skippedIface struct {
	Name, Why string
}

// addrSet is every LAN interface the node uses, and every other one with
// the reason it is not used.
type addrSet struct {
	Used    []lanIface
	Skipped []skippedIface
	// unplugged: skipped for having no carrier, with their addresses;
	// one of them is advertised rather than loopback when nothing else
	// is there.
	unplugged []lanIface
}

// scanInterfaces builds the address set. An interface is used when it
// is up, not loopback, multicast-capable, has a carrier and a usable
// address, and is not virtual (docker0, a VPN's tun0, …) — unless named,
// which lets a virtual one in. With names given, only those are used.
func scanInterfaces(named []string) (addrSet, error) {
	var set addrSet
	ifaces, err := net.Interfaces()
	if err != nil {
		return set, fmt.Errorf("list interfaces: %w", err)
	}
	for _, want := range named {
		found := false
		for _, fi := range ifaces {
			found = found || fi.Name == want
		}
		if !found {
			return set, &ConfigError{Field: "Iface", Err: fmt.Errorf("%s: no such interface", want)}
		}
	}
	def := defaultRouteIface()
	for i := range ifaces {
		fi := &ifaces[i]
		isNamed := slices.Contains(named, fi.Name)
		why := ""
		switch {
		case fi.Flags&net.FlagLoopback != 0:
			why = "loopback"
		case len(named) > 0 && !isNamed:
			why = "not named by --iface"
		case fi.Flags&net.FlagUp == 0:
			why = "down"
		case fi.Flags&net.FlagMulticast == 0:
			why = "no multicast (mDNS cannot work on it)"
		case !isNamed && virtualIface(fi.Name):
			why = "virtual (container bridge, VPN or tunnel); name it with --iface to use it"
		}
		if why != "" {
			set.Skipped = append(set.Skipped, skippedIface{Name: fi.Name, Why: why})
			continue
		}
		li := lanIface{Name: fi.Name, Index: fi.Index, Prefixes: lanPrefixes(fi)}
		switch {
		case len(li.Prefixes) == 0:
			set.Skipped = append(set.Skipped, skippedIface{Name: fi.Name, Why: "no address yet"})
		case !hasCarrier(fi.Name):
			set.Skipped = append(set.Skipped, skippedIface{Name: fi.Name, Why: "no link (cable or Wi-Fi)"})
			set.unplugged = append(set.unplugged, li)
		case fi.Name == def:
			set.Used = append([]lanIface{li}, set.Used...) // the default route's first
		default:
			set.Used = append(set.Used, li)
		}
	}
	return set, nil
}

// lanPrefixes lists an interface's usable addresses, IPv4 first, then
// IPv6 ULA and global, then link-local.
func lanPrefixes(fi *net.Interface) []netip.Prefix {
	addrs, err := fi.Addrs()
	if err != nil {
		return nil
	}
	var v4, v6, ll []netip.Prefix
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		switch {
		case ip.IsLoopback(), ip.IsMulticast(), ip.IsUnspecified():
		case ip.Is4() && ip.IsLinkLocalUnicast():
			// 169.254/16: what a host gives itself when DHCP fails
		case ip.Is4():
			v4 = append(v4, netip.PrefixFrom(ip, pfx.Bits()))
		case ip.IsLinkLocalUnicast():
			ll = append(ll, netip.PrefixFrom(ip, pfx.Bits())) // its zone is the interface's name
		default:
			v6 = append(v6, netip.PrefixFrom(ip, pfx.Bits()))
		}
	}
	return append(append(v4, v6...), ll...)
}

// prefixes is every address of the set, interface by interface.
func (s addrSet) prefixes() []mesh.IfaceAddr {
	var out []mesh.IfaceAddr
	for _, u := range s.Used {
		for _, p := range u.Prefixes {
			out = append(out, mesh.IfaceAddr{Prefix: p, Iface: u.Name})
		}
	}
	return out
}

// key identifies the set's interfaces and addresses, to notice a change.
func (s addrSet) key() string {
	var b strings.Builder
	for _, u := range s.Used {
		fmt.Fprintf(&b, "%s/%d:", u.Name, u.Index)
		for _, p := range u.Prefixes {
			b.WriteString(p.String() + ",")
		}
		b.WriteString(";")
	}
	return b.String()
}

// primary is the address memberlist advertises: the set's first IPv4
// address (the default route's interface comes first), else its first
// IPv6 ULA or global one, else a link-local one (without its zone:
// memberlist has no place for one; the peers' transports add theirs).
func (s addrSet) primary() (netip.Addr, string, bool) {
	for pass := range 3 {
		for _, u := range s.Used {
			for _, p := range u.Prefixes {
				a := p.Addr()
				if pass == 0 && a.Is4() || pass == 1 && a.Is6() && !a.IsLinkLocalUnicast() || pass == 2 {
					return a.WithZone(""), u.Name, true
				}
			}
		}
	}
	return netip.Addr{}, "", false
}

func primaryOf(ps []netip.Prefix) (netip.Addr, bool) {
	a, _, ok := addrSet{Used: []lanIface{{Prefixes: ps}}}.primary()
	return a, ok
}

func interfaceOf(a netip.Addr) (*net.Interface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifaces {
		addrs, _ := ifaces[i].Addrs()
		for _, x := range addrs {
			if pfx, err := netip.ParsePrefix(x.String()); err == nil && pfx.Addr() == a {
				return &ifaces[i], nil
			}
		}
	}
	return nil, errors.New("no interface has that address")
}

// defaultRouteIface reads the kernel's IPv4 routing table; "" if unknown.
func defaultRouteIface() string {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == "00000000" && fields[0] != "Iface" {
			return fields[0]
		}
	}
	return ""
}

// hasCarrier reports whether a link is actually connected to something; a
// bridge nobody is plugged into has none. Unknown means yes.
func hasCarrier(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/operstate")
	if err != nil {
		return true
	}
	s := strings.TrimSpace(string(b))
	return s == "up" || s == "unknown"
}

// virtualIface reports whether an interface is, by its name, a container
// or VM bridge, a VPN or another tunnel: nobody of the office LAN is on it,
// or (a VPN) it leads off the LAN.
func virtualIface(name string) bool {
	for _, p := range []string{"docker", "br-", "virbr", "veth", "lxcbr", "cni", "flannel", "vmnet", "vboxnet",
		"tun", "tap", "wg", "tailscale", "zt", "utun", "ppp"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
