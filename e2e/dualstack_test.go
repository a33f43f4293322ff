//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// An IPv6-only LAN (no IPv4 address or route anywhere): the nodes find
// each other by mDNS over IPv6, see each other online, verified, at
// their IPv6 addresses, and a message goes through.
func TestIPv6OnlyLAN(t *testing.T) {
	t.Parallel()
	lab := netlab.NewWith(t, 2, netlab.Options{IPv6: true, NoIPv4: true})
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	if a, err := netip.ParseAddr(alice.ready.Addr); err != nil || a != lab.Hosts[0].Addr6 {
		t.Fatalf("alice listens on %q, want %v", alice.ready.Addr, lab.Hosts[0].Addr6)
	}
	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{bob}, "available", true) })
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })
	ps, err := alice.peers()
	if err != nil {
		t.Fatal(err)
	}
	if e := entries(ps, bob.id()); len(e) != 1 || e[0].Addr != lab.Hosts[1].Addr6.String() {
		t.Fatalf("alice lists bob as %+v, want one entry at %v", e, lab.Hosts[1].Addr6)
	}
	if r := alice.cli("send", "bob", "over IPv6"); r.code != 0 {
		t.Fatalf("send:\n%s", r)
	}
	waitMessage(t, bob, alice.id(), "over IPv6")
}

// A LAN of link-local addresses only (no DHCP, no router): found, online
// and messaging, at fe80:: addresses.
func TestLinkLocalOnlyLAN(t *testing.T) {
	t.Parallel()
	lab := netlab.NewWith(t, 2, netlab.Options{IPv6: true, NoIPv4: true, LinkLocalOnly: true})
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{bob}, "available", true) })
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })
	if r := bob.cli("send", "alice", "on the link"); r.code != 0 {
		t.Fatalf("send:\n%s", r)
	}
	waitMessage(t, alice, bob.id(), "on the link")
}

// A host on two LANs (bob: eth0 on LAN 1 with alice, eth1 on LAN 2 with
// carol) is found on both: alice and carol list it online, verified, once,
// and message it. alice and carol share no LAN: each sees the other
// through bob's gossip as "unreachable from here", not reachable.
func TestHostOnTwoLANs(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	lan2, err := lab.AddLAN()
	if err != nil {
		t.Fatal(err)
	}
	hA, hB, hC := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	// carol's host moves to LAN 2: off LAN 1, on LAN 2 as eth1.
	if err := hC.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := hC.FlushAddrs("eth0", false); err != nil {
		t.Fatal(err)
	}
	c2, err := hC.Plug(lan2, "eth1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hB.Plug(lan2, "eth1"); err != nil {
		t.Fatal(err)
	}
	nodes := startNodes(t, []*netlab.Host{hA, hB}, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	carol := startNode(t, hC, nodeOpts{name: "carol", addr: c2.String()})
	for _, n := range []*node{alice, carol} {
		waitFor(t, seeTimeout, func() error { return listsState(n, []*node{bob}, "available", true) })
		waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{n}, "available", true) })
	}
	for _, from := range []*node{alice, carol} {
		ps, err := from.peers()
		if err != nil {
			t.Fatal(err)
		}
		if e := entries(ps, bob.id()); len(e) != 1 {
			t.Fatalf("%s lists bob %d times: %+v", from, len(e), e)
		}
		text := "hello bob from " + from.name
		if r := from.cli("send", "bob", text); r.code != 0 {
			t.Fatalf("%s to bob:\n%s", from, r)
		}
		waitMessage(t, bob, from.id(), text)
	}
	// alice hears of carol by gossip, and cannot reach her.
	waitFor(t, seeTimeout, func() error {
		r := alice.cli("peers")
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.Contains(line, "carol") {
				if strings.Contains(line, "unreachable from here") {
					return nil
				}
				return fmt.Errorf("alice lists carol as %q", line)
			}
		}
		return fmt.Errorf("alice does not list carol:\n%s", r.stdout)
	})
}

// A node started with no usable interface (eth0 up, no address at all)
// is found, without a restart, once eth0 gets its address.
func TestInterfaceComesUpLater(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	hB := lab.Hosts[1]
	if err := hB.FlushAddrs("eth0", false); err != nil {
		t.Fatal(err)
	}
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice"})
	bob := startNode(t, hB, nodeOpts{name: "bob", addr: "127.0.0.1"}) // nothing else to advertise yet
	time.Sleep(2 * time.Second)
	if ps, err := alice.peers(); err != nil || len(entries(ps, bob.id())) != 0 {
		t.Fatalf("alice lists bob before bob has an address (%v): %+v", err, ps)
	}
	start := time.Now()
	if err := hB.AddAddr("eth0", netip.PrefixFrom(hB.Addr, 24)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{bob}, "available", true) })
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })
	t.Logf("bob found %v after eth0 got its address", time.Since(start).Round(time.Millisecond))
	if r := alice.cli("send", "bob", "welcome"); r.code != 0 {
		t.Fatalf("send:\n%s", r)
	}
	waitMessage(t, bob, alice.id(), "welcome")
}

// A container bridge on a host (docker0, up, with carrier and an
// address) is not used or advertised; named with --iface (repeated,
// beside eth0) it is.
func TestVirtualInterfacesNotAdvertised(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	h := lab.Hosts[0]
	if err := h.AddVirtual("docker0", netip.MustParsePrefix("172.17.0.1/16")); err != nil {
		t.Fatal(err)
	}
	alice := startNode(t, h, nodeOpts{name: "alice"})
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob"})
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })
	if alice.ready.Addr != h.Addr.String() {
		t.Errorf("alice listens on %s, want eth0's %v", alice.ready.Addr, h.Addr)
	}
	using := func(n *node) (used, skipped string) {
		rep, _ := doctor(t, n)
		for _, f := range rep.Findings {
			if f.Check == "interface" && strings.HasPrefix(f.Detail, "using ") {
				used += f.Detail + "\n"
			}
			if f.Check == "interface" && strings.HasPrefix(f.Detail, "not using docker0") {
				skipped += f.Detail + "\n"
			}
		}
		return used, skipped
	}
	used, skipped := using(alice)
	if strings.Contains(used, "docker0") || strings.Contains(used, "172.17.") || !strings.Contains(used, "eth0") || skipped == "" {
		t.Errorf("alice, docker0 unnamed: used\n%sskipped\n%s", used, skipped)
	}
	alice.Stop()
	alice2 := startNode(t, h, nodeOpts{name: "alice", dataDir: alice.dataDir, args: []string{"--iface", "eth0", "--iface", "docker0"}})
	used, _ = using(alice2)
	if !strings.Contains(used, "docker0") || !strings.Contains(used, "172.17.0.1") || !strings.Contains(used, "eth0") {
		t.Errorf("alice with --iface eth0 --iface docker0 uses\n%s", used)
	}
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice2}, "available", true) })
}
