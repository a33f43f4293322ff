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

func (r doctorReport) finding(check string) (detail, fix string) {
	for _, f := range r.Findings {
		if f.Check == check {
			return f.Detail, f.Fix
		}
	}
	return "", ""
}

// A host without a multicast route: the kernel still lets multicast out
// of the interface lanchat names for every mDNS socket, so mDNS works and
// doctor says so (its own advertisement heard back, and heard by bob),
// but it warns of the missing route with the route to add: other
// programs, and a node that knows no interface, need it. Then a firewall
// there drops mDNS (UDP 5353): doctor says its own advertisement is no
// longer heard, with what to open.
func TestDoctorNoMulticastRoute(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	if err := h1.DropMulticastRoute(); err != nil {
		t.Fatal(err)
	}
	bob := startNode(t, h2, nodeOpts{name: "bob"})
	alice := startNode(t, h1, nodeOpts{name: "alice"})
	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{bob}, "available", true) })
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })

	rep, res := doctor(t, alice)
	_, fix := rep.finding("multicast-route")
	if res.code != 0 || rep.status("multicast-route") != "warn" || !strings.Contains(fix, "ip route add 224.0.0.0/4 dev eth0") {
		t.Fatalf("no multicast route, as alice's doctor sees it:\n%s", res)
	}
	for _, check := range []string{"mdns-self", "mdns-heard", "dial-back-udp", "dial-back-tcp", "dial-back-message-port", "clock"} {
		if rep.status(check) != "ok" {
			t.Fatalf("%s is %q without a multicast route:\n%s", check, rep.status(check), res)
		}
	}
	rep, res = doctor(t, bob)
	if rep.status("multicast-route") != "ok" || rep.status("mdns-self") != "ok" || res.code != 0 {
		t.Fatalf("bob, with a multicast route:\n%s", res)
	}

	if err := h1.BlockPort("udp", 5353); err != nil {
		t.Fatal(err)
	}
	rep, res = doctor(t, alice)
	_, fix = rep.finding("mdns-self")
	if rep.status("mdns-self") != "warn" || !strings.Contains(fix, "UDP port 5353") {
		t.Fatalf("mDNS dropped on alice's machine:\n%s", res)
	}
}

// UDP dropped on the asking host: only a peer dialling back can see it.
// Alice's firewall drops UDP to her gossip port: her doctor, from bob's
// dial-back, warns that gossip falls back to TCP and names the UDP port
// to open; then it drops her message port too, and her doctor fails with
// the TCP port to open. The healthy report is clean.
func TestDoctorDialBackSeesOurFirewall(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	h1 := lab.Hosts[0]
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitFor(t, seeTimeout, func() error { return listsState(alice, []*node{bob}, "available", true) })
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })

	rep, res := doctor(t, alice)
	for _, check := range []string{"mdns-self", "mdns-heard", "dial-back-udp", "dial-back-tcp", "dial-back-message-port", "clock"} {
		if rep.status(check) != "ok" {
			t.Fatalf("healthy LAN: %s is %q:\n%s", check, rep.status(check), res)
		}
	}
	if d, _ := rep.finding("dial-back-udp"); !strings.Contains(d, "reached from bob") || res.code != 0 {
		t.Fatalf("healthy LAN:\n%s", res)
	}

	if err := h1.BlockPort("udp", alice.ready.GossipPort); err != nil {
		t.Fatal(err)
	}
	text := alice.cli("doctor")
	want := fmt.Sprintf("allow UDP port %d", alice.ready.GossipPort)
	if text.code != 0 || !strings.Contains(text.stdout, "WARN dial-back-udp") || !strings.Contains(text.stdout, "falls back to TCP") ||
		!strings.Contains(text.stdout, want) || !strings.Contains(text.stdout, "ok   dial-back-tcp") || !strings.Contains(text.stdout, "ok   dial-back-message-port") {
		t.Fatalf("UDP dropped on alice's machine, as her doctor says it (want %q):\n%s", want, text)
	}

	// Asked about bob, her doctor cannot hear his gossip answers either,
	// and says the drop is on her side, not his.
	rep, res = doctor(t, alice, "bob")
	if _, fix := rep.finding("peer-gossip-udp"); rep.status("peer-gossip-udp") != "warn" || !strings.Contains(fix, fmt.Sprintf("allow UDP port %d in this machine's firewall", alice.ready.GossipPort)) {
		t.Fatalf("UDP dropped on alice's machine, as her doctor of bob says it:\n%s", res)
	}

	if err := h1.BlockPort("tcp", alice.ready.Port); err != nil {
		t.Fatal(err)
	}
	// Bob dials back three times in a burst, then once every 5 s.
	waitFor(t, 15*time.Second, func() error {
		rep, res = doctor(t, alice)
		if d, _ := rep.finding("dial-back"); strings.Contains(d, "too often") {
			return fmt.Errorf("bob refused: %s", d)
		}
		return nil
	})
	_, fix := rep.finding("dial-back-message-port")
	if res.code != 1 || rep.status("dial-back-message-port") != "fail" || !strings.Contains(fix, fmt.Sprintf("allow TCP port %d", alice.ready.Port)) ||
		rep.status("dial-back-tcp") != "ok" {
		t.Fatalf("message port blocked on alice's machine, as her doctor sees it:\n%s", res)
	}
}

// A peer on another subnet of the same link: carol, known to bob, comes
// back with an address of another /24. Bob hears her on mDNS but has no
// route to her: his doctor says she is on another subnet, with the
// address mDNS gave and the --join to use once a router joins the two.
// With a route each way (what a router gives) and --join, she is reached,
// and the report says it is through a router.
func TestDoctorPeerOnAnotherSubnet(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	bob := startNode(t, h2, nodeOpts{name: "bob"})
	carolDir := newDataDir(t)
	carol := startNode(t, h1, nodeOpts{name: "carol", dataDir: carolDir})
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{carol}, "available", true) })
	carol.Stop()

	other := netip.MustParsePrefix("10.99.1.2/24")
	if err := h1.Readdress(other); err != nil {
		t.Fatal(err)
	}
	carol = startNode(t, h1, nodeOpts{name: "carol", dataDir: carolDir})
	var rep doctorReport
	var res cliResult
	waitFor(t, seeTimeout, func() error {
		rep, res = doctor(t, bob, "carol")
		if d, _ := rep.finding("peer-addresses"); !strings.Contains(d, "10.99.1.2") {
			return fmt.Errorf("bob has not heard carol's new address on mDNS yet:\n%s", res)
		}
		return nil
	})
	detail, fix := rep.finding("peer-subnet")
	if rep.status("peer-subnet") != "warn" || !strings.Contains(detail, "another subnet") || !strings.Contains(detail, "10.99.1.2") ||
		!strings.Contains(fix, fmt.Sprintf("--join 10.99.1.2:%d", carol.ready.GossipPort)) {
		t.Fatalf("carol on another subnet, no route:\n%s", res)
	}
	if d, _ := rep.finding("peer-seen"); !strings.Contains(d, "last heard on mDNS") || !strings.Contains(d, "left") {
		t.Fatalf("how carol was last seen:\n%s", res)
	}
	if res.code != 1 || rep.status("peer-message-port") != "fail" {
		t.Fatalf("carol cannot be reached, yet doctor does not fail:\n%s", res)
	}

	// A router between the two subnets, and --join across it.
	carol.Stop()
	if err := h1.RouteOnLink(lab.Subnet); err != nil {
		t.Fatal(err)
	}
	if err := h2.RouteOnLink(other); err != nil {
		t.Fatal(err)
	}
	carol = startNode(t, h1, nodeOpts{name: "carol", dataDir: carolDir, args: []string{"--join", bob.gossipAddr()}})
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{carol}, "available", true) })
	rep, res = doctor(t, bob, "carol")
	detail, _ = rep.finding("peer-subnet")
	if rep.status("peer-subnet") != "info" || !strings.Contains(detail, "through a router") || rep.status("peer-message-port") != "ok" || res.code != 0 {
		t.Fatalf("carol across a router:\n%s", res)
	}
}
