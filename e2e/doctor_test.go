//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"lanchat/internal/netlab"
)

type doctorReport struct {
	Running  bool `json:"running"`
	Findings []struct {
		Check, Status, Detail, Fix string
	} `json:"findings"`
}

func (r doctorReport) status(check string) string {
	for _, f := range r.Findings {
		if f.Check == check {
			return f.Status
		}
	}
	return ""
}

func doctor(t *testing.T, n *node, args ...string) (doctorReport, cliResult) {
	t.Helper()
	res := n.cli(append([]string{"doctor", "--json"}, args...)...)
	var rep doctorReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	return rep, res
}

// lanchat doctor in the broken situations the lab can make: a firewall on
// a peer's machine that drops UDP (gossip falls back to TCP), then one
// that drops its message port too. Each is named with its fix, the exit
// code says whether anything failed, and the healthy report is clean.
func TestDoctorNamesWhatIsBroken(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	h1 := lab.Hosts[0]
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitFor(t, seeTimeout, func() error { return listsState(bob, []*node{alice}, "available", true) })

	rep, res := doctor(t, bob, "alice")
	for _, check := range []string{"interface", "multicast-route", "multicast-group", "peers", "peer-gossip-udp", "peer-gossip-tcp", "peer-message-port"} {
		if rep.status(check) != "ok" {
			t.Fatalf("healthy LAN: %s is %q:\n%s", check, rep.status(check), res)
		}
	}
	if res.code != 0 || !rep.Running {
		t.Fatalf("healthy LAN:\n%s", res)
	}

	// A firewall on alice's machine drops UDP to her gossip port.
	if err := h1.BlockPort("udp", alice.ready.GossipPort); err != nil {
		t.Fatal(err)
	}
	rep, res = doctor(t, bob, "alice")
	if res.code != 0 || rep.status("peer-gossip-udp") != "warn" || rep.status("peer-gossip-tcp") != "ok" || rep.status("peer-message-port") != "ok" ||
		!strings.Contains(res.stdout, fmt.Sprintf("allow UDP port %d", alice.ready.GossipPort)) {
		t.Fatalf("UDP dropped, as bob's doctor sees it:\n%s", res)
	}

	// And her message port.
	if err := h1.BlockPort("tcp", alice.ready.Port); err != nil {
		t.Fatal(err)
	}
	rep, res = doctor(t, bob, "alice")
	if res.code != 1 || rep.status("peer-message-port") != "fail" || rep.status("peer-gossip-tcp") != "ok" {
		t.Fatalf("message port blocked, as bob's doctor sees it:\n%s", res)
	}
	text := bob.cli("doctor", "alice")
	want := fmt.Sprintf("allow TCP port %d", alice.ready.Port)
	if text.code != 1 || !strings.Contains(text.stdout, "FAIL peer-message-port") || !strings.Contains(text.stdout, want) {
		t.Fatalf("text report lacks the failure or its fix (%q):\n%s", want, text)
	}
	if err := h1.Unblock(); err != nil {
		t.Fatal(err)
	}
	rep, res = doctor(t, bob, "alice")
	if rep.status("peer-message-port") != "ok" || rep.status("peer-gossip-udp") != "ok" {
		t.Fatalf("after unblocking:\n%s", res)
	}
}
