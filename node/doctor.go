package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"lanchat/mesh"
	"lanchat/message/chat"
	"lanchat/node/api"
)

// doctorTimeout bounds each probe of a peer's port.
const doctorTimeout = 2 * time.Second

// mdnsGroup is mDNS's IPv4 group.
var mdnsGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{224, 0, 0, 251}), 5353)

// Doctor examines this node's network, and a peer when q names one.
func (n *Node) Doctor(ctx context.Context, q api.DoctorQuery) (api.DoctorReport, error) {
	if n.closed() {
		return api.DoctorReport{}, ErrClosed
	}
	rep := api.DoctorReport{Running: true}
	rep.Findings = append(rep.Findings, interfaceFindings(n.addr, n.ifi, n.cfg.Iface)...)
	if n.cfg.NoMDNS {
		rep.Findings = append(rep.Findings, api.Finding{Check: "mdns", Status: api.FindingInfo,
			Detail: "mDNS is off (--no-mdns): peers come only from --join and from gossip"})
	} else {
		// Each interface in use, on the family mDNS runs on there: IPv4
		// where it has an IPv4 address, else IPv6 (ff02::fb).
		for _, u := range n.doctorUsed() {
			mf := multicastFindings(u.addr, u.ifi)
			if u.addr.Is4() {
				checkMulticastRoute(mf, u.ifi)
			}
			rep.Findings = append(rep.Findings, mf...)
		}
	}
	if r, ok := n.info(); ok {
		rep.Findings = append(rep.Findings, api.Finding{Check: "ports", Status: api.FindingInfo,
			Detail: fmt.Sprintf("listening on %s: gossip on UDP and TCP port %d, messages on TCP port %d", r.Addr, r.GossipPort, r.Port),
			Fix:    fmt.Sprintf("a firewall between peers must let these through (UDP %d, TCP %d and %d)", r.GossipPort, r.GossipPort, r.Port)})
	}
	ifaces := n.doctorIfaces()
	if !n.cfg.NoMDNS {
		rep.Findings = append(rep.Findings, n.mdnsSelfFindings(ctx, ifaces)...)
	}
	rep.Findings = append(rep.Findings, ipv6Findings(n.addr, ifaces)...)
	ps := n.mesh.Peers()
	rep.Findings = append(rep.Findings, peersFindings(ps, n.cfg.NoMDNS)...)
	var p mesh.Peer
	if q.Peer != "" {
		var err error
		if p, err = n.chat.Resolve(q.Peer); err != nil {
			return api.DoctorReport{}, apiError(err)
		}
		if mp, ok := n.mesh.Peer(p.ID); ok {
			p.Addr, p.GossipPort, p.TLSPort, p.State, p.LastSeen, p.Verified, p.Reachable, p.SeenBy =
				mp.Addr, mp.GossipPort, mp.TLSPort, mp.State, mp.LastSeen, mp.Verified, mp.Reachable, mp.SeenBy
		}
	}
	gport, tport := n.mesh.Ports()
	rep.Findings = append(rep.Findings, dialBackFindings(n.askDialBacks(ctx, dialBackPeers(ps, p.ID)), gport, tport, !n.cfg.NoMDNS)...)
	if q.Peer == "" {
		return rep, nil
	}
	ref := ref(n.chat.PeerRef(p.ID))
	rep.Peer = &ref
	rep.Findings = append(rep.Findings, n.peerFindings(ctx, p)...)
	rep.Findings = append(rep.Findings, n.peerHowFindings(p)...)
	rep.Findings = append(rep.Findings, n.othersSeeFindings(ctx, p, ps)...)
	blameUDP(rep.Findings, gport)
	return rep, nil
}

// interfaceFindings: the interfaces in use, with their addresses, and
// why each other one is not.
func interfaceFindings(addr netip.Addr, used *net.Interface, named []string) []api.Finding {
	var out []api.Finding
	set, err := scanInterfaces(named)
	if err != nil {
		return append(out, api.Finding{Check: "interface", Status: api.FindingWarn, Detail: "cannot list interfaces: " + err.Error()})
	}
	how := ""
	if len(named) > 0 {
		how = " (--iface)"
	}
	switch {
	case len(set.Used) > 0:
		for _, u := range set.Used {
			var as []string
			for _, p := range u.Prefixes {
				as = append(as, p.Addr().String())
			}
			out = append(out, api.Finding{Check: "interface", Status: api.FindingOK,
				Detail: fmt.Sprintf("using %s%s: %s", u.Name, how, strings.Join(as, ", "))})
		}
	case used != nil:
		out = append(out, api.Finding{Check: "interface", Status: api.FindingWarn,
			Detail: fmt.Sprintf("using %s, %s: it has no link", used.Name, addr),
			Fix:    "plug in the cable or join the Wi-Fi; the node waits for it"})
	case addr.IsLoopback():
		out = append(out, api.Finding{Check: "interface", Status: api.FindingFail,
			Detail: "no LAN interface: listening on " + addr.String() + ", reachable from this machine only",
			Fix:    "connect to the network (cable, Wi-Fi), or name an interface with --iface; the node notices one that comes up"})
	default:
		out = append(out, api.Finding{Check: "interface", Status: api.FindingOK, Detail: "using " + addr.String() + " (--bind)"})
	}
	for _, sk := range set.Skipped {
		if sk.Why == "loopback" {
			continue // never a LAN; not worth a line
		}
		f := api.Finding{Check: "interface", Status: api.FindingInfo, Detail: fmt.Sprintf("not using %s: %s", sk.Name, sk.Why)}
		if sk.Why != "down" && !strings.HasPrefix(sk.Why, "no multicast") && !strings.Contains(sk.Why, "--iface") {
			f.Fix = "name it with --iface " + sk.Name + " if your colleagues are on it"
		}
		out = append(out, f)
	}
	return out
}

// multicastFindings: whether mDNS can leave and reach this node, on the
// family of its address.
func multicastFindings(addr netip.Addr, ifi *net.Interface) []api.Finding {
	var out []api.Finding
	network, group, gname := "udp4", mdnsGroup, "224.0.0.251"
	route := "ip route add 224.0.0.0/4 dev " + ifi.Name
	if addr.Is6() {
		network, group, gname = "udp6", netip.AddrPortFrom(netip.MustParseAddr("ff02::fb").WithZone(ifi.Name), 5353), "ff02::fb"
		route = "ip -6 route add ff00::/8 dev " + ifi.Name + " table local"
		addr = netip.IPv6Unspecified()
	}
	c, err := net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)), net.UDPAddrFromAddrPort(group))
	if err != nil {
		out = append(out, api.Finding{Check: "multicast-route", Status: api.FindingFail,
			Detail: "no route for multicast (" + err.Error() + "): mDNS can neither announce this node nor find others",
			Fix:    route + " (or start with --join <a colleague's address>)"})
	} else {
		c.Close()
		out = append(out, api.Finding{Check: "multicast-route", Status: api.FindingOK, Detail: "multicast is routed out of " + ifi.Name})
	}
	joined, err := igmpJoined(ifi.Name, group.Addr())
	switch {
	case err != nil:
		out = append(out, api.Finding{Check: "multicast-group", Status: api.FindingInfo, Detail: "cannot read group memberships: " + err.Error()})
	case joined:
		out = append(out, api.Finding{Check: "multicast-group", Status: api.FindingOK, Detail: "listening to mDNS (" + gname + ") on " + ifi.Name})
	default:
		out = append(out, api.Finding{Check: "multicast-group", Status: api.FindingWarn,
			Detail: "not a member of mDNS's group " + gname + " on " + ifi.Name + ": announcements of other nodes are not heard",
			Fix:    "check that the interface allows multicast (ip link set " + ifi.Name + " multicast on)"})
	}
	return out
}

// igmpJoined reads /proc/net/igmp (/proc/net/igmp6 for an IPv6 group):
// is iface a member of group?
func igmpJoined(iface string, group netip.Addr) (bool, error) {
	if group.Is6() {
		return mld6Joined(iface, group)
	}
	f, err := os.Open("/proc/net/igmp")
	if err != nil {
		return false, err
	}
	defer f.Close()
	g := group.As4()
	want := fmt.Sprintf("%02X%02X%02X%02X", g[3], g[2], g[1], g[0]) // little-endian hex
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			// "Idx Device : Count Querier" header lines, one per device
			in = len(fields) > 1 && fields[1] == iface
			continue
		}
		if in && fields[0] == want {
			return true, nil
		}
	}
	return false, sc.Err()
}

// mld6Joined reads /proc/net/igmp6: "idx device group(hex) users …".
func mld6Joined(iface string, group netip.Addr) (bool, error) {
	b, err := os.ReadFile("/proc/net/igmp6")
	if err != nil {
		return false, err
	}
	g := group.As16()
	want := fmt.Sprintf("%x", g[:])
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == iface && f[2] == want {
			return true, nil
		}
	}
	return false, nil
}

// peersFindings: who is seen, and whether their keys were proven.
func peersFindings(ps []mesh.Peer, noMDNS bool) []api.Finding {
	online, unverified := 0, 0
	for _, p := range ps {
		if p.Online() {
			online++
			if !p.Verified {
				unverified++
			}
		}
	}
	var out []api.Finding
	switch {
	case online == 0:
		fix := "if colleagues run lanchat, multicast is probably filtered (many Wi-Fi networks do): start with --join <a colleague's address>"
		if noMDNS {
			fix = "mDNS is off: give a colleague's address with --join"
		}
		out = append(out, api.Finding{Check: "peers", Status: api.FindingWarn, Detail: "no other node is online", Fix: fix})
	default:
		out = append(out, api.Finding{Check: "peers", Status: api.FindingOK, Detail: fmt.Sprintf("%d online, %d of them verified", online, online-unverified)})
	}
	if unverified > 0 {
		out = append(out, api.Finding{Check: "peers-verified", Status: api.FindingWarn,
			Detail: fmt.Sprintf("%d online peers are seen by gossip but never answered on their message port with their key", unverified),
			Fix:    "a firewall blocks their message port (TCP), on their side or ours: lanchat doctor <name> tells which"})
	}
	return out
}

// peerFindings: what this node knows of p, and what answers of it now.
func (n *Node) peerFindings(ctx context.Context, p mesh.Peer) []api.Finding {
	name := p.Name
	if mp, ok := n.mesh.Peer(p.ID); ok {
		p = mp
	}
	var out []api.Finding
	seen := "never seen on the network by this node (known from the contact book)"
	if !p.LastSeen.IsZero() {
		seen = fmt.Sprintf("%s, last seen %s ago", p.State, time.Since(p.LastSeen).Round(time.Second))
	}
	st := api.FindingInfo
	if p.Online() {
		st = api.FindingOK
	}
	out = append(out, api.Finding{Check: "peer", Status: st, Detail: fmt.Sprintf("%s (%s) is %s", name, mesh.ShortID(p.ID), seen)})
	if p.Online() && !p.Reachable {
		others := "others"
		if p.SeenBy == 1 {
			others = "other"
		}
		out = append(out, api.Finding{Check: "peer-seen-by-others", Status: api.FindingWarn,
			Detail: fmt.Sprintf("online for %d %s, but unreachable from here: neither memberlist's direct probes nor a handshake reach it", p.SeenBy, others),
			Fix:    "a firewall or the link between this machine and " + name + "'s drops the traffic; other machines reach it, so look between the two"})
	}
	r, err := n.mesh.Reach(ctx, p.ID, doctorTimeout)
	if err != nil {
		fix := "it must be on the network once for this node to learn where it is"
		return append(out, api.Finding{Check: "peer-address", Status: api.FindingWarn, Detail: err.Error(), Fix: fix})
	}
	out = append(out, api.Finding{Check: "peer-address", Status: api.FindingInfo,
		Detail: fmt.Sprintf("last known address %s (gossip port %d, message port %d)", r.Addr, r.GossipPort, r.TLSPort)})
	switch {
	case r.UDPErr == nil:
		out = append(out, api.Finding{Check: "peer-gossip-udp", Status: api.FindingOK, Detail: fmt.Sprintf("answers gossip over UDP in %s", r.UDPRTT.Round(time.Microsecond))})
	case r.TCPErr == nil:
		out = append(out, api.Finding{Check: "peer-gossip-udp", Status: api.FindingWarn,
			Detail: "no answer to gossip over UDP, but TCP works: a firewall drops UDP; gossip falls back to TCP, so presence still works but failures are noticed later",
			Fix:    fmt.Sprintf("allow UDP port %d between the two machines", r.GossipPort)})
	default:
		out = append(out, api.Finding{Check: "peer-gossip-udp", Status: api.FindingFail, Detail: "no answer to gossip over UDP (" + r.UDPErr.Error() + ")"})
	}
	if r.TCPErr == nil {
		out = append(out, api.Finding{Check: "peer-gossip-tcp", Status: api.FindingOK, Detail: fmt.Sprintf("gossip port answers over TCP in %s", r.TCPRTT.Round(time.Microsecond))})
	} else {
		out = append(out, api.Finding{Check: "peer-gossip-tcp", Status: api.FindingFail,
			Detail: "gossip port does not answer over TCP: " + probeError(r.TCPErr),
			Fix:    reachFix(p, r.GossipPort)})
	}
	switch {
	case r.TLSErr == nil:
		out = append(out, api.Finding{Check: "peer-message-port", Status: api.FindingOK,
			Detail: fmt.Sprintf("message port answers with %s's key in %s", name, r.TLSRTT.Round(time.Microsecond))})
	case errors.Is(r.TLSErr, mesh.ErrWrongPeer):
		out = append(out, api.Finding{Check: "peer-message-port", Status: api.FindingFail,
			Detail: "the message port at that address answers with another key: the address now belongs to another machine",
			Fix:    "wait for " + name + " to come back on the network; its new address comes by gossip or mDNS"})
	default:
		out = append(out, api.Finding{Check: "peer-message-port", Status: api.FindingFail,
			Detail: "message port does not answer: " + probeError(r.TLSErr) + "; messages to " + name + " wait in the outbox",
			Fix:    reachFix(p, r.TLSPort)})
	}
	return out
}

// probeError says what a failed dial means, in a person's words.
func probeError(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "no reply in " + doctorTimeout.String() + " (the machine is off, or a firewall drops the packets)"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused (nothing listens there: lanchat is not running, or runs on another port)"
	case strings.Contains(err.Error(), "no route to host"), strings.Contains(err.Error(), "network is unreachable"):
		return "no route to it (another subnet or VLAN, or it is gone)"
	}
	return err.Error()
}

func reachFix(p mesh.Peer, port uint16) string {
	if !p.Online() {
		return "it is offline: check that its machine is on and lanchat runs there"
	}
	return fmt.Sprintf("allow TCP port %d on %s's machine and any firewall between you", port, p.Name)
}

// The one-shot: only what needs no running node.

func (o *OneShot) Doctor(ctx context.Context, q api.DoctorQuery) (api.DoctorReport, error) {
	addr, ifi, _, err := chooseAddr(o.cfg.Bind, o.cfg.Iface)
	if err != nil {
		return api.DoctorReport{}, apiError(err)
	}
	rep := api.DoctorReport{}
	rep.Findings = append(rep.Findings, api.Finding{Check: "node", Status: api.FindingWarn,
		Detail: "no node runs on this data directory: only this machine's side is examined", Fix: "start one (lanchat run) and ask again to examine peers"})
	rep.Findings = append(rep.Findings, interfaceFindings(addr, ifi, o.cfg.Iface)...)
	if !o.cfg.NoMDNS && ifi != nil {
		// No node, so nobody joined the group: only the route is telling.
		mf := multicastFindings(addr, ifi)
		checkMulticastRoute(mf, ifi)
		for _, f := range mf {
			if f.Check == "multicast-route" {
				rep.Findings = append(rep.Findings, f)
			}
		}
	}
	if q.Peer != "" {
		err := o.offline(func(svc *chat.Service) error {
			p, err := svc.Resolve(q.Peer)
			if err != nil {
				return apiError(err)
			}
			r := ref(svc.PeerRef(p.ID))
			rep.Peer = &r
			rep.Findings = append(rep.Findings, api.Finding{Check: "peer", Status: api.FindingInfo,
				Detail: fmt.Sprintf("%s (%s) is in the contact book; start a node to probe it", r.Name, mesh.ShortID(r.ID))})
			return nil
		})
		if err != nil {
			return api.DoctorReport{}, err
		}
	}
	return rep, nil
}
