package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// Prefix starts the name of every namespace a lab makes. Sweep removes
	// only namespaces whose name starts with it.
	Prefix = "lct-"

	// MaxHosts is the largest number of hosts one lab can have.
	MaxHosts = 200

	// bridgeName is the bridge inside the lab's bridge namespace.
	bridgeName = "br0"
	// hostIface is the name of every host's link to the bridge.
	hostIface = "eth0"
	// cmdTimeout bounds every ip and nft command the lab runs.
	cmdTimeout = 30 * time.Second
	// linkTimeout bounds the wait for a link to come up.
	linkTimeout = 10 * time.Second
	// linkWait is how often waitLinkUp looks at the link.
	linkWait = 10 * time.Millisecond
)

// subnet is the address range of every lab's hosts. Labs are isolated from
// each other and from the machine, so they all use the same range.
const subnet = "10.99.0.0/24"

// subnet6 is the hosts' IPv6 ULA range in a lab with Options.IPv6.
const subnet6 = "fd99::/64"

// Lab is a LAN of hosts in network namespaces. Create it with New; it removes
// itself when the test ends.
type Lab struct {
	// Hosts are the lab's hosts, h1 first.
	Hosts []*Host
	// Subnet is the hosts' address range, 10.99.0.0/24. Every lab uses the
	// same range: labs are isolated from each other and from the machine.
	Subnet netip.Prefix
	// ID is the lab's unique name part: every namespace of the lab is named
	// ID + "-" + role ("br" for the bridge, "h1", "h2", … for hosts).
	ID string

	// Subnet6 is the hosts' IPv6 ULA range, fd99::/64, in a lab with
	// Options.IPv6 (and not LinkLocalOnly); else invalid.
	Subnet6 netip.Prefix

	bridgeNS string
	tools    tools
	opts     Options
	lans     int // LANs added by AddLAN

	mu     sync.Mutex // guards the fields below
	closed bool
	made   []string // namespaces created so far, in order
}

// Host is one machine of a Lab: a network namespace with eth0 on the lab's
// bridge.
type Host struct {
	// Name is the host's short name: "h1", "h2", ….
	Name string
	// NS is the name of the host's network namespace (as in ip netns).
	NS string
	// Addr is the IPv4 address of the host's eth0; invalid in a lab
	// without IPv4 (Options.NoIPv4).
	Addr netip.Addr
	// Addr6 is the IPv6 ULA address of the host's eth0 (fd99::N+1), in a
	// lab with Options.IPv6 and not LinkLocalOnly; else invalid.
	Addr6 netip.Addr

	lab  *Lab
	port string // the host's port on the bridge, in the bridge namespace
}

// tools are the absolute paths of the commands a lab runs.
type tools struct {
	ip, nft string
}

// New builds a lab of n hosts and registers its removal with tb.Cleanup. It
// skips the test when the machine cannot run a lab (fails it when CI=true),
// and fails the test when building the lab goes wrong.
func New(tb testing.TB, n int) *Lab {
	tb.Helper()
	return NewWith(tb, n, Options{})
}

// NewWith is New with options: an IPv6 or IPv6-only lab (see Options).
func NewWith(tb testing.TB, n int, opts Options) *Lab {
	tb.Helper()
	Require(tb)
	if n < 1 || n > MaxHosts {
		tb.Fatalf("netlab: %d hosts: want 1 to %d", n, MaxHosts)
	}
	if err := Sweep(); err != nil {
		tb.Logf("netlab: removing leftovers of earlier runs: %v", err)
	}
	t, err := lookTools()
	if err != nil {
		tb.Fatalf("netlab: %v", err)
	}
	l := &Lab{tools: t, Subnet: netip.MustParsePrefix(subnet), opts: opts}
	if opts.IPv6 && !opts.LinkLocalOnly {
		l.Subnet6 = netip.MustParsePrefix(subnet6)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("netlab: %v", err)
		}
	})
	if err := l.build(n); err != nil {
		tb.Fatalf("netlab: build lab of %d hosts: %v", n, err)
	}
	return l
}

// build creates the namespaces, the bridge and the hosts.
func (l *Lab) build(n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout+time.Duration(n)*time.Second)
	defer cancel()

	if err := raiseNeighbourLimit(n); err != nil {
		return err
	}
	if err := l.makeBridgeNS(ctx); err != nil {
		return err
	}
	bridgeSetup := []string{
		"link add " + bridgeName + " type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
		"link set " + bridgeName + " up",
	}
	if err := l.ipBatch(ctx, l.bridgeNS, bridgeSetup); err != nil {
		return fmt.Errorf("set up bridge: %w", err)
	}

	base := l.Subnet.Addr().As4()
	for i := 1; i <= n; i++ {
		addr := base
		addr[3] = byte(i + 1)
		h := &Host{
			Name: "h" + strconv.Itoa(i),
			NS:   l.ID + "-h" + strconv.Itoa(i),
			Addr: netip.AddrFrom4(addr),
			lab:  l,
			port: "p" + strconv.Itoa(i),
		}
		if err := l.addNS(ctx, h.NS); err != nil {
			return err
		}
		// Both ends are created inside the lab's namespaces: the machine's
		// own namespace never sees them.
		if err := l.ip(ctx, "-n", l.bridgeNS, "link", "add", h.port, "type", "veth", "peer", "name", hostIface, "netns", h.NS); err != nil {
			return fmt.Errorf("link %s to bridge: %w", h.Name, err)
		}
		if err := l.ipBatch(ctx, l.bridgeNS, []string{
			"link set " + h.port + " master " + bridgeName,
			"link set " + h.port + " up",
		}); err != nil {
			return fmt.Errorf("plug %s into bridge: %w", h.Name, err)
		}
		if err := l.setUpHost(ctx, h, i); err != nil {
			return fmt.Errorf("set up %s: %w", h.Name, err)
		}
		l.Hosts = append(l.Hosts, h)
	}
	for _, h := range l.Hosts {
		if err := h.waitLinkUp(ctx); err != nil {
			return err
		}
	}
	return nil
}

// setUpHost configures host number i's eth0 as the lab's options ask.
func (l *Lab) setUpHost(ctx context.Context, h *Host, i int) error {
	if l.opts.IPv6 {
		// No duplicate address detection: the addresses are usable at
		// once instead of tentative for a second or two.
		if err := h.sysctl("net/ipv6/conf/all/accept_dad", "0"); err != nil {
			return err
		}
		if err := h.sysctl("net/ipv6/conf/"+hostIface+"/accept_dad", "0"); err != nil {
			return err
		}
	} else if l.opts.NoIPv4 {
		return errors.New("a lab with neither IPv4 nor IPv6")
	}
	cmds := []string{"link set lo up", "link set " + hostIface + " up"}
	if !l.opts.NoIPv4 {
		cmds = append(cmds,
			"addr add "+netip.PrefixFrom(h.Addr, l.Subnet.Bits()).String()+" dev "+hostIface,
			// Without this route a multicast send or join fails with
			// "no such device": the namespace has no default route.
			"route add 224.0.0.0/4 dev "+hostIface)
	} else {
		h.Addr = netip.Addr{}
	}
	if l.Subnet6.IsValid() {
		b := l.Subnet6.Addr().As16()
		b[15] = byte(i + 1)
		h.Addr6 = netip.AddrFrom16(b)
		cmds = append(cmds, "addr add "+netip.PrefixFrom(h.Addr6, l.Subnet6.Bits()).String()+" dev "+hostIface+" nodad")
	}
	return l.ipBatch(ctx, h.NS, cmds)
}

// makeBridgeNS picks the lab's ID and creates its bridge namespace, trying
// again on the rare clash of random names.
func (l *Lab) makeBridgeNS(ctx context.Context) error {
	var err error
	for range 5 {
		l.ID = newLabID()
		l.bridgeNS = l.ID + "-br"
		if err = l.addNS(ctx, l.bridgeNS); err == nil {
			return nil
		}
		if _, statErr := os.Stat(nsPath(l.bridgeNS)); statErr != nil {
			return err // not a clash
		}
	}
	return err
}

// addNS creates a namespace and remembers it for Close.
func (l *Lab) addNS(ctx context.Context, name string) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return errors.New("lab is closed")
	}
	if err := l.ip(ctx, "netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.made = append(l.made, name)
	l.mu.Unlock()
	return nil
}

// Close removes every namespace of the lab, and with them every interface
// and nftables rule; it first kills any process still running inside them.
// It is idempotent. New registers it with t.Cleanup, so tests need not call
// it.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	made := l.made
	l.made = nil
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var errs []error
	// Hosts first, bridge last (reverse order of creation).
	for i := len(made) - 1; i >= 0; i-- {
		if err := removeNS(ctx, l.tools, made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab %s: %w", l.ID, err)
	}
	return nil
}

// Host returns the host with the given name ("h2"), or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// String returns the host's name and address, for test logs.
func (h *Host) String() string { return h.Name + "(" + h.Addr.String() + ")" }

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// waitLinkUp waits until the host's eth0 is operationally up (has carrier
// from the bridge port).
func (h *Host) waitLinkUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, linkTimeout)
	defer cancel()
	for {
		out, err := h.lab.ipOutput(ctx, "-n", h.NS, "-o", "link", "show", "dev", hostIface)
		if err == nil && strings.Contains(out, "state UP") {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("state is not UP: %s", strings.TrimSpace(out))
			}
			return fmt.Errorf("wait for %s %s up: %w", h.Name, hostIface, err)
		case <-time.After(linkWait):
		}
	}
}

// newLabID returns Prefix + this process's pid + 6 random hex digits. The
// pid lets Sweep tell a crashed run's namespaces from a running one's.
func newLabID() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return Prefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// ip runs the ip command with args.
func (l *Lab) ip(ctx context.Context, args ...string) error {
	_, err := runTool(ctx, "", l.tools.ip, args...)
	return err
}

// ipOutput runs the ip command with args and returns its standard output.
func (l *Lab) ipOutput(ctx context.Context, args ...string) (string, error) {
	return runTool(ctx, "", l.tools.ip, args...)
}

// ipBatch runs ip commands, one a line, inside namespace ns in one process.
func (l *Lab) ipBatch(ctx context.Context, ns string, cmds []string) error {
	_, err := runTool(ctx, strings.Join(cmds, "\n")+"\n", l.tools.ip, "-n", ns, "-batch", "-")
	return err
}

// nft runs an nftables script inside namespace ns, atomically.
func (l *Lab) nft(ns, script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_, err := runTool(ctx, script, l.tools.ip, "netns", "exec", ns, l.tools.nft, "-f", "-")
	return err
}

// runTool runs a command, feeding it stdin, and returns its standard
// output; its error carries the command line and what it printed.
func runTool(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// raiseNeighbourLimit makes room in the kernel's neighbour (ARP) table for
// a lab of n hosts, each of which learns every other: the limit
// (gc_thresh3, 1024 by default) counts the entries of every namespace
// together, and past it hosts silently hear no one — at about 33 hosts.
// It only ever raises the limits, so that labs running at the same time
// do not undo each other's room.
func raiseNeighbourLimit(n int) error {
	need := 2 * n * n
	for _, knob := range []struct {
		name string
		val  int
	}{{"gc_thresh3", need}, {"gc_thresh2", need / 2}, {"gc_thresh1", need / 4}} { // largest first: they stay ordered
		path := "/proc/sys/net/ipv4/neigh/default/" + knob.name
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("neighbour table limit: %w", err)
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("neighbour table limit %s: %q", knob.name, b)
		}
		if cur >= knob.val {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(knob.val)), 0o644); err != nil {
			return fmt.Errorf("raise the neighbour table limit for %d hosts: %w", n, err)
		}
	}
	return nil
}
