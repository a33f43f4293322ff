package node

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"lanchat/mesh"
	"lanchat/node/api"
)

func findingOf(fs []api.Finding, check string) (api.Finding, bool) {
	for _, f := range fs {
		if f.Check == check {
			return f, true
		}
	}
	return api.Finding{}, false
}

// A peer whose addresses share no subnet with ours needs a router, and
// the report says so with the --join to use; one in our subnet gets no
// line; one reached across a router is told as such.
func TestSubnetFinding(t *testing.T) {
	ours := []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}
	away := mesh.Peer{Name: "carol", GossipPort: 7480, State: mesh.Offline}
	f, ok := subnetFinding(away, []netip.Addr{netip.MustParseAddr("10.99.1.2")}, 7480, ours)
	if !ok || f.Status != api.FindingWarn || !strings.Contains(f.Detail, "another subnet") || !strings.Contains(f.Fix, "--join 10.99.1.2:7480") {
		t.Fatalf("offline peer on another subnet: %+v (%v)", f, ok)
	}
	if _, ok := subnetFinding(away, []netip.Addr{netip.MustParseAddr("10.99.1.2"), netip.MustParseAddr("10.99.0.7")}, 7480, ours); ok {
		t.Fatal("a peer with one address in our subnet is said to be on another")
	}
	reached := away
	reached.State, reached.Reachable = mesh.Available, true
	if f, ok := subnetFinding(reached, []netip.Addr{netip.MustParseAddr("10.99.1.2")}, 7480, ours); !ok || f.Status != api.FindingInfo || !strings.Contains(f.Detail, "router") {
		t.Fatalf("reached across a router: %+v (%v)", f, ok)
	}
}

// UDP dropped on the way in while TCP gets through is the firewall
// gossip survives by falling back to TCP: a warning naming the UDP port;
// a message port nobody reaches fails with the TCP port to open.
func TestDialBackFindings(t *testing.T) {
	ok := mesh.ProbeResult{OK: true, RTT: 300}
	lost := mesh.ProbeResult{Err: "timeout"}
	bob := mesh.Peer{Name: "bob"}
	fs := dialBackFindings([]asked{{p: bob, d: mesh.DialBack{UDP: lost, TCP: ok, TLS: ok, HeardMDNS: true, MDNSAgo: time.Second}}}, 7480, 7481, true)
	udp, _ := findingOf(fs, "dial-back-udp")
	if udp.Status != api.FindingWarn || !strings.Contains(udp.Detail, "drops UDP") || !strings.Contains(udp.Fix, "UDP port 7480") {
		t.Fatalf("UDP dropped: %+v", udp)
	}
	if f, _ := findingOf(fs, "dial-back-message-port"); f.Status != api.FindingOK {
		t.Fatalf("message port: %+v", f)
	}
	if f, _ := findingOf(fs, "mdns-heard"); f.Status != api.FindingOK {
		t.Fatalf("mdns heard: %+v", f)
	}
	fs = dialBackFindings([]asked{{p: bob, d: mesh.DialBack{UDP: ok, TCP: ok, TLS: lost, Offset: -40 * time.Second, Uncertainty: time.Millisecond}}}, 7480, 7481, true)
	tls, _ := findingOf(fs, "dial-back-message-port")
	if tls.Status != api.FindingFail || !strings.Contains(tls.Fix, "TCP port 7481") {
		t.Fatalf("message port blocked: %+v", tls)
	}
	if f, _ := findingOf(fs, "mdns-heard"); f.Status != api.FindingWarn {
		t.Fatalf("mdns not heard: %+v", f)
	}
	if f, _ := findingOf(fs, "clock"); f.Status != api.FindingWarn || !strings.Contains(f.Detail, "40s behind") {
		t.Fatalf("clock 40 s behind: %+v", f)
	}
	fs = dialBackFindings([]asked{{p: bob, d: mesh.DialBack{Refused: mesh.DialBackRateLimited}}}, 7480, 7481, true)
	if f, _ := findingOf(fs, "dial-back"); f.Status != api.FindingInfo || !strings.Contains(f.Detail, "too often") {
		t.Fatalf("refused: %+v", fs)
	}
}
