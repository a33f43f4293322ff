package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
)

// Command returns a command that runs name with args inside the host's
// network namespace (through ip netns exec, which execs name in place, so
// cmd.Process is the program itself once it has started). The process gets
// SIGKILL if the test process dies, so a crashed test leaves no program
// running. ctx must not be nil; as with exec.CommandContext, the process is
// killed when ctx ends.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.lab.tools.ip, append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = childSysProcAttr()
	return cmd
}

// Do runs fn on an OS thread switched into the host's network namespace, so
// that sockets fn opens belong to the host: they keep working, inside the
// host, after Do returns. Goroutines that fn starts do not run in the host's
// namespace. Name lookups other than of IP literals are not supported.
func (h *Host) Do(fn func() error) error {
	target, err := os.Open(nsPath(h.NS))
	if err != nil {
		return fmt.Errorf("open namespace of %s: %w", h.Name, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		// The thread is locked for the goroutine's whole life and only
		// unlocked once it is back in its own namespace; if going back
		// fails, the goroutine exits locked and the runtime discards the
		// thread rather than reuse it in the wrong namespace.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer self.Close()
		if err := setns(target); err != nil {
			errc <- fmt.Errorf("enter namespace of %s: %w", h.Name, err)
			return
		}
		ferr := fn()
		if err := setns(self); err != nil {
			errc <- fmt.Errorf("leave namespace of %s: %w", h.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dial connects from the host to address (an IP literal and port), like
// net.Dialer.DialContext.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens on the host, like net.Listen.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket listens on the host, like net.ListenPacket.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// ListenMulticastUDP joins the multicast group gaddr on the host's eth0, like
// net.ListenMulticastUDP.
func (h *Host) ListenMulticastUDP(network string, gaddr *net.UDPAddr) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(hostIface)
		if err != nil {
			return err
		}
		c, err = net.ListenMulticastUDP(network, ifi, gaddr)
		return err
	})
	return c, err
}

// Unplug takes the host's port on the bridge down, as if its cable were
// pulled at the switch: nothing reaches the host or leaves it, and its eth0
// loses carrier.
func (h *Host) Unplug() error {
	if err := h.setPort("down"); err != nil {
		return fmt.Errorf("unplug %s: %w", h.Name, err)
	}
	return nil
}

// Replug brings the host's bridge port up again and waits until the host's
// eth0 has carrier.
func (h *Host) Replug() error {
	if err := h.setPort("up"); err != nil {
		return fmt.Errorf("replug %s: %w", h.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), linkTimeout)
	defer cancel()
	if err := h.waitLinkUp(ctx); err != nil {
		return fmt.Errorf("replug %s: %w", h.Name, err)
	}
	return nil
}

func (h *Host) setPort(state string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return h.lab.ip(ctx, "-n", h.lab.bridgeNS, "link", "set", "dev", h.port, state)
}

// DropPercent drops, at random, n percent of the IP packets that enter or
// leave the host's eth0 (each direction separately), until ClearDrop or
// another DropPercent. n must be 0 to 100; 0 is ClearDrop. A sender on the
// host sees its dropped packets fail with "operation not permitted".
func (h *Host) DropPercent(n int) error {
	script, err := dropScript(n)
	if err == nil {
		err = h.lab.nft(h.NS, script)
	}
	if err != nil {
		return fmt.Errorf("drop %d%% on %s: %w", n, h.Name, err)
	}
	return nil
}

// ClearDrop stops dropping the host's packets.
func (h *Host) ClearDrop() error {
	if err := h.lab.nft(h.NS, deleteTableScript(dropTable)); err != nil {
		return fmt.Errorf("clear drop on %s: %w", h.Name, err)
	}
	return nil
}

// Partition splits the lab: the bridge stops forwarding frames between hosts
// of different groups, in both directions, multicast and broadcast included.
// Hosts within a group still reach each other, and hosts in no group reach
// everyone. It replaces any earlier partition.
func (l *Lab) Partition(groups ...[]*Host) error {
	ports := make([][]string, len(groups))
	seen := make(map[*Host]bool)
	for i, g := range groups {
		for _, h := range g {
			if h == nil || h.lab != l {
				return fmt.Errorf("partition: host %v is not in lab %s", h, l.ID)
			}
			if seen[h] {
				return fmt.Errorf("partition: %s is in two groups", h.Name)
			}
			seen[h] = true
			ports[i] = append(ports[i], h.port)
		}
	}
	if err := l.nft(l.bridgeNS, partitionScript(ports)); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	return nil
}

// Heal undoes Partition.
func (l *Lab) Heal() error {
	if err := l.nft(l.bridgeNS, deleteTableScript(partitionTable)); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	return nil
}

// Counts is what has entered a host's eth0 since CountPackets.
type Counts struct {
	Packets, Bytes uint64 // every IP packet (unicast, multicast, broadcast)
	SYNs           uint64 // of which TCP connection attempts (SYN without ACK)
	TCP, UDP       uint64 // of which TCP, and UDP
	MDNS           uint64 // of which mDNS (UDP from or to port 5353)
}

// CountPackets starts counting, with nftables counters in the host's
// namespace, the packets that enter its eth0 (from zero, replacing earlier
// counters). ARP is not counted: it is not IP.
func (h *Host) CountPackets() error {
	if err := h.lab.nft(h.NS, countScript()); err != nil {
		return fmt.Errorf("count packets on %s: %w", h.Name, err)
	}
	return nil
}

// Counted reads the counters CountPackets started.
func (h *Host) Counted() (Counts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := runTool(ctx, "", h.lab.tools.ip, "netns", "exec", h.NS, h.lab.tools.nft, "list", "table", countTable)
	if err != nil {
		return Counts{}, fmt.Errorf("read packet counters of %s: %w", h.Name, err)
	}
	c, err := parseCounts(out)
	if err != nil {
		return Counts{}, fmt.Errorf("read packet counters of %s: %w", h.Name, err)
	}
	return c, nil
}
