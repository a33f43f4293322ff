package netlab

import (
	"context"
	"fmt"
	"net/netip"
)

// Faults of addressing and routing, for lanchat doctor's tests: a machine
// whose multicast route is missing, and one moved to another subnet on the
// same link (as when a laptop gets its address from another VLAN's DHCP,
// or sits behind a router).

// DropMulticastRoute deletes the host's route for 224.0.0.0/4: a multicast
// send or join then fails with "no such device" or "network is
// unreachable", as on a machine with no default route.
func (h *Host) DropMulticastRoute() error {
	return h.ipCmds("drop the multicast route", "route del 224.0.0.0/4 dev "+hostIface)
}

// AddMulticastRoute puts the route DropMulticastRoute deleted back.
func (h *Host) AddMulticastRoute() error {
	return h.ipCmds("add the multicast route", "route add 224.0.0.0/4 dev "+hostIface)
}

// Readdress replaces the address of the host's eth0 with p's address and
// prefix length, and sets Addr. The host stays on the lab's bridge, so
// link-local multicast (mDNS) still reaches it, but a p outside the lab's
// subnet makes unicast to the others fail with "network is unreachable"
// until RouteOnLink gives a route. The multicast route is kept.
func (h *Host) Readdress(p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("readdress %s to %v: want an IPv4 prefix", h.Name, p)
	}
	if err := h.ipCmds("readdress to "+p.String(),
		"addr flush dev "+hostIface,
		"addr add "+p.String()+" dev "+hostIface,
	); err != nil {
		return err
	}
	h.Addr = p.Addr()
	return nil
}

// RouteOnLink routes p straight out of the host's eth0, as a router
// between two subnets on one link would make them reach each other.
func (h *Host) RouteOnLink(p netip.Prefix) error {
	return h.ipCmds("route "+p.String(), "route add "+p.Masked().String()+" dev "+hostIface)
}

// Unroute deletes a route RouteOnLink added.
func (h *Host) Unroute(p netip.Prefix) error {
	return h.ipCmds("unroute "+p.String(), "route del "+p.Masked().String()+" dev "+hostIface)
}

func (h *Host) ipCmds(what string, cmds ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if err := h.lab.ipBatch(ctx, h.NS, cmds); err != nil {
		return fmt.Errorf("%s on %s: %w", what, h.Name, err)
	}
	return nil
}
