//go:build linux

package e2e

import (
	"fmt"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// lossPerHost is the share of packets each host drops, each way: a packet
// from one host to another crosses two such drops, so 11 % each is a
// loss of 1 - 0.89² ≈ 20 % between any two.
const lossPerHost = 11

// TestLossyPresenceNeverOffline: the honest case. Every packet between
// two hosts has a 20 % chance of being lost, for 20 s; nobody is ever shown offline while up, as
// `run --json` prints it and as `peers --json` lists it, and messages
// still go through.
func TestLossyPresenceNeverOffline(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "carol")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, o := range nodes {
		waitFor(t, seeTimeout, func() error { return listsState(o, nodes, "available", true) })
	}
	for _, h := range lab.Hosts {
		if err := h.DropPercent(lossPerHost); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	stopChat := chatter(t, alice, bob, 500*time.Millisecond)
	for time.Since(start) < 20*time.Second {
		for _, o := range nodes {
			if err := neverOffline(o, nodes, start); err != nil {
				t.Fatal(err)
			}
		}
		// peers --json from one node a round, so the CLI's own traffic
		// stays small beside the gossip.
		o := nodes[int(time.Since(start)/time.Second)%len(nodes)]
		ps, err := o.peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range nodes {
			if s == o {
				continue
			}
			if es := entries(ps, s.id()); len(es) != 1 || es[0].State == "offline" || es[0].State == "left" {
				t.Fatalf("%s lists %s as %+v at 20%% loss", o, s, es)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	worst, sent, err := stopChat()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range nodes {
		if err := neverOffline(o, nodes, start); err != nil {
			t.Error(err)
		}
	}
	t.Logf("20 s at 20%% loss between hosts (%d%% per host): %d messages, slowest %v; %s", lossPerHost, sent, worst.Round(time.Millisecond), presenceCounts(nodes, start))
	if sent < 10 {
		t.Errorf("only %d messages at 20%% loss", sent)
	}
}

// presenceCounts says how many presence events each node printed since.
func presenceCounts(nodes []*node, since time.Time) string {
	s := ""
	for _, n := range nodes {
		c := 0
		for _, ev := range n.eventsOf("presence") {
			if !ev.at.Before(since) {
				c++
			}
		}
		s += fmt.Sprintf("%s %d presence events; ", n.name, c)
	}
	return s
}
