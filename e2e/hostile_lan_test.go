//go:build linux

package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"lanchat/discovery"
	"lanchat/internal/netlab"
	"lanchat/mesh"
	"lanchat/message"
)

// TestHostileMDNS: a host that runs no node answers for lanchat on mDNS —
// instances for ids that do not exist, bob's id at the attacker's
// address, and carol's id after carol left — over and over. mDNS is only
// a hint: alice and bob keep chatting and seeing each other where they
// are, no forged id is ever shown online or verified, and carol stays
// gone.
func TestHostileMDNS(t *testing.T) {
	t.Parallel()
	hostileMDNS(t, false)
}

// TestHostileMDNSKeyed is the same in a closed network, the attacker
// copying the network tag from the honest nodes' own answers: it still
// learns nothing, and neither do they.
func TestHostileMDNSKeyed(t *testing.T) {
	t.Parallel()
	hostileMDNS(t, true)
}

func hostileMDNS(t *testing.T, keyed bool) {
	lab := netlab.New(t, 4)
	args := keyArgs(t, lab.Hosts[0], keyed)
	var nodes []*node
	for i, name := range []string{"alice", "bob", "carol"} {
		nodes = append(nodes, launchNode(t, lab.Hosts[i], nodeOpts{name: name, args: args}))
	}
	for _, n := range nodes {
		if err := n.waitReady(readyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	attacker := lab.Hosts[3]
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	c, err := attacker.ListenMulticastUDP("udp4", group)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitSees(t, seeTimeout, nodes, nodes, "available")
	honest := nodes[:2]
	for _, o := range honest {
		waitFor(t, seeTimeout, func() error { return listsState(o, honest, "available", true) })
	}
	if code := carol.Stop(); code != 0 {
		t.Fatalf("carol exited %d", code)
	}
	waitSees(t, seeTimeout, honest, []*node{carol}, "left")

	// The attacker's port numbers: nothing listens there, so a node that
	// believed the answers would find no one to verify.
	forged := []discovery.Candidate{
		{ID: bob.id(), Proto: mesh.ProtocolVersion, GossipPort: 7946, TLSPort: 7947, Addrs: []netip.Addr{attacker.Addr}},
		{ID: carol.id(), Proto: mesh.ProtocolVersion, GossipPort: 7946, TLSPort: 7947, Addrs: []netip.Addr{attacker.Addr}},
	}
	fake := map[string]bool{}
	for range 20 {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		id := mesh.IDFromPublicKey(k.Public().(ed25519.PublicKey))
		fake[id] = true
		forged = append(forged, discovery.Candidate{ID: id, Proto: mesh.ProtocolVersion, GossipPort: 7946, TLSPort: 7947,
			Addrs: []netip.Addr{attacker.Addr}})
	}
	// Bob's real ports too: a node that dials them reaches the attacker's
	// address, where bob's key is not.
	forged = append(forged, discovery.Candidate{ID: bob.id(), Proto: mesh.ProtocolVersion,
		GossipPort: uint16(bob.ready.GossipPort), TLSPort: uint16(bob.ready.Port), Addrs: []netip.Addr{attacker.Addr}})
	if keyed {
		tag := learnNetworkTag(t, c, group)
		t.Logf("the network tag, as the honest nodes announce it: %s", tag)
		for i := range forged {
			forged[i].Network = tag
		}
	}
	pkts := forgedAnnouncements(t, forged, attacker.Addr)

	// The attacker's gossip port accepts and hangs up, counting: the proof
	// that the answers were heard (a node tries to join what it hears of),
	// and of how hard they make the nodes dial.
	ln, err := attacker.Listen("tcp", netip.AddrPortFrom(attacker.Addr, 7946).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialled atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()

	stopChat := chatter(t, alice, bob, 300*time.Millisecond)
	rssBefore := alice.rss()
	start := time.Now()
	for time.Since(start) < 12*time.Second {
		// Unsolicited answers and answers to every query heard alike.
		for _, p := range pkts {
			if _, err := c.WriteToUDP(p, group); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		buf := make([]byte, 9000)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				break
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) == nil && !q.Response {
				for _, p := range pkts {
					_, _ = c.WriteToUDP(p, group)
				}
			}
		}
		for _, o := range honest {
			ps, err := o.peers()
			if err != nil {
				t.Fatal(err)
			}
			s := otherOf(honest, o)
			if es := entries(ps, s.id()); len(es) != 1 || es[0].State != "available" || !es[0].Verified || es[0].Addr != s.ready.Addr {
				t.Fatalf("%s lists %s as %+v among the forged answers", o, s, es)
			}
			for _, p := range ps {
				online := p.State != "offline" && p.State != "left"
				switch {
				case p.ID == carol.id() && online:
					t.Fatalf("%s shows carol, who left, as %+v after a forged answer", o, p)
				case fake[p.ID] && (online || p.Verified):
					t.Fatalf("%s shows an id that does not exist as %+v", o, p)
				}
			}
			if err := neverOffline(o, honest, start); err != nil {
				t.Fatal(err)
			}
		}
	}
	worst, sent, err := stopChat()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages exchanged among the forged answers, slowest %v; alice's RSS %d → %d MiB; %d dials of the forged gossip address",
		sent, worst.Round(time.Millisecond), rssBefore>>20, alice.rss()>>20, dialled.Load())
	// Each node dials one address at most DialBurst (8) times at once and
	// DialsPerAddr (2) a second after that, however much it hears.
	n, elapsed := dialled.Load(), time.Since(start).Seconds()+1
	if most := int64(len(honest)) * int64(8+2*elapsed); n > most {
		t.Errorf("the forged answers made the nodes dial the attacker %d times in %.0f s, want at most %d", n, elapsed, most)
	}
	if n == 0 {
		t.Error("no node dialled the forged address: the answers were not heard, the test proves nothing")
	}
	if sent < 5 {
		t.Errorf("only %d messages went through in 12 s", sent)
	}
	if ev, ok := alice.presenceSince(carol.id(), "available", start); ok {
		t.Errorf("alice showed carol back: %s", ev.raw)
	}
	if grown := alice.rss() - rssBefore; grown > 64<<20 {
		t.Errorf("alice's RSS grew by %d MiB under forged mDNS answers", grown>>20)
	}
}

// learnNetworkTag asks the group for lanchat instances and returns the
// network tag of the first answer that has one, as any host can.
func learnNetworkTag(t *testing.T, c *net.UDPConn, group *net.UDPAddr) string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(discovery.ServiceName+"."+discovery.Domain+".", dns.TypePTR)
	q.RecursionDesired = false
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(seeTimeout)
	buf := make([]byte, 9000)
	for time.Now().Before(deadline) {
		if _, err := c.WriteToUDP(b, group); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				break
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) != nil || !m.Response {
				continue
			}
			for _, rr := range append(m.Answer, m.Extra...) {
				if txt, ok := rr.(*dns.TXT); ok {
					for _, kv := range txt.Txt {
						if tag, ok := strings.CutPrefix(kv, "net="); ok {
							return tag
						}
					}
				}
			}
		}
	}
	t.Fatal("no lanchat answer with a network tag")
	return ""
}

// forgedAnnouncements builds one mDNS response per candidate: PTR, SRV,
// TXT and the A record of a host at addr.
func forgedAnnouncements(t *testing.T, cs []discovery.Candidate, addr netip.Addr) [][]byte {
	t.Helper()
	var out [][]byte
	for i, c := range cs {
		txt, err := discovery.EncodeTXT(c)
		if err != nil {
			t.Fatal(err)
		}
		inst := fmt.Sprintf("forged%d.%s.%s.", i, discovery.ServiceName, discovery.Domain)
		host := fmt.Sprintf("forged%d.%s.", i, discovery.Domain)
		svc := discovery.ServiceName + "." + discovery.Domain + "."
		hdr := func(name string, typ uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
		}
		m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}
		m.Answer = []dns.RR{
			&dns.PTR{Hdr: hdr(svc, dns.TypePTR), Ptr: inst},
			&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Target: host, Port: c.TLSPort},
			&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: txt},
			&dns.A{Hdr: hdr(host, dns.TypeA), A: addr.AsSlice()},
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestHostileNameSquatter: a flood of messages from 2,100 fresh keys,
// more than the contact book keeps strangers, some of them named bob,
// then a node of its own calling itself bob. Alice's pinned bob stays
// hers: `send bob` reaches him, the squatter is listed with a warning,
// the contact book stays bounded, and alice and bob chat throughout.
func TestHostileNameSquatter(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts[:2], "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	attacker := lab.Hosts[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	waitFor(t, seeTimeout, func() error {
		ps, err := alice.peers()
		if err != nil {
			return err
		}
		if es := entries(ps, bob.id()); len(es) != 1 || !es[0].Trusted {
			return fmt.Errorf("alice has not pinned bob: %+v", es)
		}
		return nil
	})
	stopChat := chatter(t, alice, bob, 300*time.Millisecond)
	rssBefore := alice.rss()

	// The contact flood: each key one message, under names alice never
	// pinned and, for some, bob's own; more keys than the contact book
	// keeps strangers (2,000), so it has to evict.
	const flood, workers = 2100, 6
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < flood; i += workers {
				name := fmt.Sprintf("guest%d", i)
				if i%10 == 0 {
					name = "bob"
				}
				s := newStranger(t, attacker, name)
				ack, err := s.sendOnce(alice, fmt.Sprintf("hello %d from a fresh key", i), time.Now())
				if err == nil && ack.Status != message.AckOK {
					err = fmt.Errorf("%v %q", ack.Status, ack.Reason)
				}
				if err != nil {
					t.Errorf("stranger %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d fresh keys wrote to alice in %v", flood, time.Since(start).Round(time.Millisecond))

	// The squatter: a real node named bob, on the attacker's host.
	squat := startNode(t, attacker, nodeOpts{name: "bob", args: []string{"--join", alice.gossipAddr()}})
	waitFor(t, seeTimeout, func() error {
		ps, err := alice.peers()
		if err != nil {
			return err
		}
		es := entries(ps, squat.id())
		if len(es) != 1 || !es[0].Verified || es[0].Trusted || es[0].Warning == "" {
			return fmt.Errorf("alice lists the squatter as %+v, want verified, untrusted, with a warning", es)
		}
		if es := entries(ps, bob.id()); len(es) != 1 || !es[0].Trusted || es[0].Warning != "" || es[0].State != "available" {
			return fmt.Errorf("alice lists her bob as %+v", es)
		}
		return nil
	})
	if r := alice.cli("send", "bob", "for the real bob"); r.code != 0 || !strings.Contains(r.stdout, bob.id()[:7]) {
		t.Fatalf("send bob: %v, want delivered to %.7s", r, bob.id())
	}
	waitMessage(t, bob, alice.id(), "for the real bob")
	if hasMessage(squat, alice.id(), "for the real bob") {
		t.Fatal("the squatter got alice's message for bob")
	}
	// The squatter writes: the message alice shows says it is not her bob.
	if r := squat.cli("send", alice.id(), "it's me, bob"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	m := waitMessage(t, alice, squat.id(), "it's me, bob")
	var raw struct {
		From struct {
			Warning string `json:"warning"`
		} `json:"from"`
	}
	if err := json.Unmarshal([]byte(m.raw), &raw); err != nil || raw.From.Warning == "" {
		t.Errorf("the squatter's message shows no warning: %s", m.raw)
	}
	// The flood's own "bob"s are strangers too: none became alice's bob.
	r := alice.cli("contacts", "--json")
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	var cs []struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Trusted bool   `json:"trusted"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &cs); err != nil {
		t.Fatalf("contacts --json: %v\n%s", err, r.stdout)
	}
	strangers, pinnedBob := 0, false
	for _, c := range cs {
		if c.Trusted && c.ID != bob.id() && strings.EqualFold(c.Name, "bob") {
			t.Fatalf("alice trusts another bob: %+v", c)
		}
		pinnedBob = pinnedBob || c.Trusted && c.ID == bob.id()
		if !c.Trusted {
			strangers++
		}
	}
	t.Logf("alice's contact book after the flood: %d entries, %d of them strangers", len(cs), strangers)
	if !pinnedBob {
		t.Error("the flood pushed bob out of alice's contacts")
	}
	// The contact book keeps at most 2,000 strangers (message/chat's
	// maxStrangers).
	if strangers > 2000 {
		t.Errorf("alice's contact book holds %d strangers after a flood of %d", strangers, flood)
	}
	worst, sent, err := stopChat()
	if err != nil {
		t.Fatal(err)
	}
	if err := neverOffline(alice, nodes, start); err != nil {
		t.Error(err)
	}
	grown := alice.rss() - rssBefore
	t.Logf("%d messages exchanged during the flood, slowest %v; alice's RSS grew %d MiB", sent, worst.Round(time.Millisecond), grown>>20)
	if grown > 64<<20 {
		t.Errorf("alice's RSS grew by %d MiB under a contact flood", grown>>20)
	}
}
