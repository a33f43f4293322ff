package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options change what New builds (NewWith).
type Options struct {
	// IPv6 gives every host's eth0 an IPv6 address of fd99::/64 (Addr6)
	// beside its link-local one, without duplicate address detection, so
	// both are usable at once.
	IPv6 bool
	// NoIPv4 leaves IPv4 out: no address, no multicast route (an
	// IPv6-only LAN). It needs IPv6.
	NoIPv4 bool
	// LinkLocalOnly (with IPv6) leaves out the ULA address: the hosts have
	// only their link-local fe80:: addresses.
	LinkLocalOnly bool
}

// LAN is a further switch of a lab (AddLAN): a bridge of its own, which
// hosts are plugged into with Host.Plug.
type LAN struct {
	// Name is the LAN's bridge name, in the lab's bridge namespace ("br1", …).
	Name string
	// Subnet is its IPv4 range, 10.99.N.0/24 for the Nth added LAN.
	Subnet netip.Prefix
	// Subnet6 is its IPv6 range, fd99:0:0:N::/64.
	Subnet6 netip.Prefix

	lab   *Lab
	index int
	hosts int // hosts plugged in so far
}

// AddLAN adds a switch to the lab, on which no host is yet: the lab's
// first LAN (br0) and this one are not connected.
func (l *Lab) AddLAN() (*LAN, error) {
	l.mu.Lock()
	l.lans++
	n := l.lans
	l.mu.Unlock()
	if n > 200 {
		return nil, fmt.Errorf("add LAN: at most 200")
	}
	lan := &LAN{
		Name:    "br" + strconv.Itoa(n),
		Subnet:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(n), 0}), 24),
		Subnet6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x99, 6: byte(n >> 8), 7: byte(n)}), 64),
		lab:     l,
		index:   n,
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if err := l.ipBatch(ctx, l.bridgeNS, []string{
		"link add " + lan.Name + " type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
		"link set " + lan.Name + " up",
	}); err != nil {
		return nil, fmt.Errorf("add LAN %s: %w", lan.Name, err)
	}
	return lan, nil
}

// Plug connects the host to lan by a new interface named iface, with the
// next IPv4 address of the LAN's subnet and its IPv6 counterpart
// (without duplicate address detection), and a multicast route; it
// returns the IPv4 address and waits for the link.
func (h *Host) Plug(lan *LAN, iface string) (netip.Addr, error) {
	l := h.lab
	l.mu.Lock()
	lan.hosts++
	k := lan.hosts
	l.mu.Unlock()
	if k > 250 {
		return netip.Addr{}, fmt.Errorf("plug %s into %s: LAN full", h.Name, lan.Name)
	}
	a4 := lan.Subnet.Addr().As4()
	a4[3] = byte(k + 1)
	a6 := lan.Subnet6.Addr().As16()
	a6[15] = byte(k + 1)
	addr, addr6 := netip.AddrFrom4(a4), netip.AddrFrom16(a6)
	port := fmt.Sprintf("l%d-%s", lan.index, h.Name)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if err := l.ip(ctx, "-n", l.bridgeNS, "link", "add", port, "type", "veth", "peer", "name", iface, "netns", h.NS); err != nil {
		return netip.Addr{}, fmt.Errorf("plug %s into %s: %w", h.Name, lan.Name, err)
	}
	_ = h.sysctl("net/ipv6/conf/"+iface+"/accept_dad", "0")
	if err := l.ipBatch(ctx, l.bridgeNS, []string{"link set " + port + " master " + lan.Name, "link set " + port + " up"}); err != nil {
		return netip.Addr{}, fmt.Errorf("plug %s into %s: %w", h.Name, lan.Name, err)
	}
	if err := l.ipBatch(ctx, h.NS, []string{
		"link set " + iface + " up",
		"addr add " + netip.PrefixFrom(addr, 24).String() + " dev " + iface,
		"addr add " + netip.PrefixFrom(addr6, 64).String() + " dev " + iface + " nodad",
		"route add 224.0.0.0/4 dev " + iface + " metric " + strconv.Itoa(100+lan.index),
	}); err != nil {
		return netip.Addr{}, fmt.Errorf("plug %s into %s: %w", h.Name, lan.Name, err)
	}
	if err := h.waitIfaceUp(ctx, iface); err != nil {
		return netip.Addr{}, err
	}
	return addr, nil
}

// AddAddr adds an address (a prefix, "10.99.0.9/24" or "fd99::9/64") to
// the host's interface iface while the host runs, as a DHCP lease or a
// router advertisement does; an IPv4 one also gets the multicast route
// the lab's hosts have, if the interface has none.
func (h *Host) AddAddr(iface string, p netip.Prefix) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := []string{"addr add " + p.String() + " dev " + iface}
	if p.Addr().Is6() {
		cmd[0] += " nodad"
	} else {
		cmd = append(cmd, "route replace 224.0.0.0/4 dev "+iface)
	}
	if err := h.lab.ipBatch(ctx, h.NS, cmd); err != nil {
		return fmt.Errorf("add %v to %s of %s: %w", p, iface, h.Name, err)
	}
	return nil
}

// FlushAddrs removes every address of the host's interface iface, and
// turns IPv6 off on it (which takes its link-local address too) unless
// keep6: the interface stays up, with nothing to reach it by.
func (h *Host) FlushAddrs(iface string, keep6 bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if !keep6 {
		if err := h.sysctl("net/ipv6/conf/"+iface+"/disable_ipv6", "1"); err != nil {
			return err
		}
	}
	if err := h.lab.ip(ctx, "-n", h.NS, "addr", "flush", "dev", iface); err != nil {
		return fmt.Errorf("flush %s of %s: %w", iface, h.Name, err)
	}
	return nil
}

// EnableIPv6 turns IPv6 back on for the host's iface (after FlushAddrs):
// it gets its link-local address again, at once (no DAD).
func (h *Host) EnableIPv6(iface string) error {
	_ = h.sysctl("net/ipv6/conf/"+iface+"/accept_dad", "0")
	return h.sysctl("net/ipv6/conf/"+iface+"/disable_ipv6", "0")
}

// AddVirtual adds to the host an interface of its own, named name, that
// is up, has carrier and multicast and the address p: what a container
// bridge (docker0) looks like to a program on the host (a bridge, with
// a veth pair vethNAMEa/vethNAMEb plugged in). Nothing else is on it.
func (h *Host) AddVirtual(name string, p netip.Prefix) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	// A bridge with one veth pair plugged in, as Docker makes: a bridge
	// with no port has no carrier.
	if err := h.lab.ipBatch(ctx, h.NS, []string{
		"link add " + name + " type bridge",
		"link add veth" + name + "a type veth peer name veth" + name + "b",
		"link set veth" + name + "a master " + name,
		"link set veth" + name + "a up",
		"link set veth" + name + "b up",
		"link set " + name + " up",
		"addr add " + p.String() + " dev " + name,
	}); err != nil {
		return fmt.Errorf("add %s to %s: %w", name, h.Name, err)
	}
	return nil
}

// sysctl writes a per-namespace setting (a path below /proc/sys) inside
// the host's namespace.
func (h *Host) sysctl(path, value string) error {
	err := h.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%s on %s: %w", path, value, h.Name, err)
	}
	return nil
}

// waitIfaceUp waits until the host's iface is operationally up.
func (h *Host) waitIfaceUp(ctx context.Context, iface string) error {
	for {
		out, err := h.lab.ipOutput(ctx, "-n", h.NS, "-o", "link", "show", "dev", iface)
		if err == nil && containsUp(out) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s %s up: %w", h.Name, iface, ctx.Err())
		case <-timeAfter(linkWait):
		}
	}
}

func containsUp(out string) bool { return strings.Contains(out, "state UP") }

var timeAfter = time.After
