package netlab

import (
	"fmt"
	"net/netip"
	"strconv"
)

// blockTable holds BlockPort's rules, in a host's namespace.
const blockTable = "inet netlab_block"

// BlockPort makes the host drop, unanswered, every packet of proto ("tcp"
// or "udp") arriving for port, as a firewall that drops rather than
// rejects does; other ports are untouched. Blocks add up until Unblock.
func (h *Host) BlockPort(proto string, port int) error {
	if proto != "tcp" && proto != "udp" || port <= 0 || port > 65535 {
		return fmt.Errorf("block %s port %d: want tcp or udp and a port", proto, port)
	}
	script := "table " + blockTable + " {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n" +
		"add rule " + blockTable + " in " + proto + " dport " + strconv.Itoa(port) + " drop\n"
	if err := h.lab.nft(h.NS, script); err != nil {
		return fmt.Errorf("block %s port %d on %s: %w", proto, port, h.Name, err)
	}
	return nil
}

// BlockFrom makes the host drop, unanswered, every packet arriving from
// addr: with BlockFrom on both of two hosts, each for the other, they no
// longer reach each other while both still reach everyone else (a firewall
// or a broken link between exactly two machines). Blocks add up until
// Unblock.
func (h *Host) BlockFrom(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("block from %v on %s: not an address", addr, h.Name)
	}
	family := "ip"
	if addr.Is6() && !addr.Is4In6() {
		family = "ip6"
	}
	script := "table " + blockTable + " {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n" +
		"add rule " + blockTable + " in " + family + " saddr " + addr.Unmap().String() + " drop\n"
	if err := h.lab.nft(h.NS, script); err != nil {
		return fmt.Errorf("block from %v on %s: %w", addr, h.Name, err)
	}
	return nil
}

// Unblock removes every BlockPort and BlockFrom rule of the host.
func (h *Host) Unblock() error {
	if err := h.lab.nft(h.NS, deleteTableScript(blockTable)); err != nil {
		return fmt.Errorf("unblock on %s: %w", h.Name, err)
	}
	return nil
}
