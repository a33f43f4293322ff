package node

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// chooseAddr picks the address other peers should use to reach us.
//
// With bind set, that address is used (an unspecified bind address still
// needs a LAN address to advertise). Otherwise, among interfaces that are
// up, multicast-capable, not loopback and carrying a private or global
// IPv4 address, it prefers iface when named, then the interface of the
// default route, then the first one whose link has a carrier, skipping
// virtual bridges that nobody else is on (docker0 and the like), then one
// whose cable is not plugged in yet (with a warning: it may come). With no
// such interface it falls back to loopback and says so: the node then
// works only on this machine.
func chooseAddr(bind, iface string) (addr netip.Addr, ifi *net.Interface, warning string, err error) {
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
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, nil, "", fmt.Errorf("list interfaces: %w", err)
	}
	if iface != "" {
		for i := range ifaces {
			if ifaces[i].Name == iface {
				a, ok := lanAddr(&ifaces[i])
				if !ok {
					return netip.Addr{}, nil, "", &ConfigError{Field: "Iface", Err: fmt.Errorf("%s has no usable IPv4 address", iface)}
				}
				return a, &ifaces[i], "", nil
			}
		}
		return netip.Addr{}, nil, "", &ConfigError{Field: "Iface", Err: fmt.Errorf("%s: no such interface", iface)}
	}
	def := defaultRouteIface()
	var best, unplugged *net.Interface
	var bestAddr, unpluggedAddr netip.Addr
	for i := range ifaces {
		fi := &ifaces[i]
		if fi.Flags&net.FlagUp == 0 || fi.Flags&net.FlagLoopback != 0 || fi.Flags&net.FlagMulticast == 0 {
			continue
		}
		a, ok := lanAddr(fi)
		if !ok {
			continue
		}
		if !hasCarrier(fi.Name) {
			// A cable not plugged in yet beats loopback: it may come.
			if unplugged == nil && !virtualBridge(fi.Name) {
				unplugged, unpluggedAddr = fi, a
			}
			continue
		}
		if fi.Name == def {
			return a, fi, "", nil
		}
		if best == nil && !virtualBridge(fi.Name) {
			best, bestAddr = fi, a
		}
	}
	if best != nil {
		return bestAddr, best, "", nil
	}
	if unplugged != nil {
		return unpluggedAddr, unplugged, fmt.Sprintf("%s has no link yet; using %s and waiting for the network", unplugged.Name, unpluggedAddr), nil
	}
	lo := netip.MustParseAddr("127.0.0.1")
	return lo, nil, "no LAN interface found: listening on 127.0.0.1, reachable from this machine only", nil
}

func lanAddr(fi *net.Interface) (netip.Addr, bool) {
	addrs, err := fi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr()
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip, true
		}
	}
	return netip.Addr{}, false
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

func virtualBridge(name string) bool {
	for _, p := range []string{"docker", "br-", "virbr", "veth", "lxcbr", "cni", "flannel", "vmnet", "vboxnet"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
