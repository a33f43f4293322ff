package node

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"lanchat/discovery"
	"lanchat/mesh"
	"lanchat/node/api"
)

// What lanchat doctor asks of others: how many peers are asked to dial
// back (and for their clocks), how many for their view of a named peer,
// and how far two clocks may be apart before it is worth a line. Hybrid
// logical clocks keep conversations in order whatever the offset; what
// reads oddly past a few seconds is times: receipts before the message,
// "last seen" in the future.
const (
	doctorDialBacks  = 3
	doctorDirAsks    = 3
	clockWarn        = 5 * time.Second
	mdnsSelfWindow   = time.Second
	doctorAskTimeout = 8 * time.Second
)

// mdnsSelfFindings: whether this node's own mDNS advertisement comes back
// when it asks for it, on each interface it advertises on.
func (n *Node) mdnsSelfFindings(ctx context.Context, ifaces []*net.Interface) []api.Finding {
	var out []api.Finding
	for _, ifi := range ifaces {
		heard, err := discovery.HeardSelf(ctx, ifi, n.id.ID, mdnsSelfWindow)
		switch {
		case heard:
			out = append(out, api.Finding{Check: "mdns-self", Status: api.FindingOK,
				Detail: "this node's mDNS advertisement is heard on " + ifi.Name + " (asked for it, and it answered)"})
		case err != nil:
			out = append(out, api.Finding{Check: "mdns-self", Status: api.FindingWarn,
				Detail: "cannot ask for this node's mDNS advertisement on " + ifi.Name + ": " + err.Error() + "; others on it cannot find this node by mDNS",
				Fix:    "see multicast-route above; meanwhile start with --join <a colleague's address>"})
		default:
			out = append(out, api.Finding{Check: "mdns-self", Status: api.FindingWarn,
				Detail: "this node's mDNS advertisement is not heard on " + ifi.Name + ": asked for it, and no answer came within " + mdnsSelfWindow.String(),
				Fix:    "multicast does not loop back, or a firewall drops UDP port 5353: allow it, or start with --join <a colleague's address>"})
		}
	}
	return out
}

// ipv6Findings: which IPv6 addresses the interfaces in use hold, and
// whether the node uses one.
func ipv6Findings(addr netip.Addr, ifaces []*net.Interface) []api.Finding {
	var out []api.Finding
	for _, ifi := range ifaces {
		var global, ula, link []string
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
				continue
			}
			ip := p.Addr()
			switch {
			case ip.IsLinkLocalUnicast():
				link = append(link, ip.String())
			case ip.IsPrivate():
				ula = append(ula, ip.String())
			case ip.IsGlobalUnicast():
				global = append(global, ip.String())
			}
		}
		if len(global)+len(ula)+len(link) == 0 {
			out = append(out, api.Finding{Check: "ipv6", Status: api.FindingInfo, Detail: "no IPv6 address on " + ifi.Name + ": IPv4 only"})
			continue
		}
		var parts []string
		for _, g := range []struct {
			kind string
			as   []string
		}{{"global", global}, {"unique local", ula}, {"link-local", link}} {
			if len(g.as) > 0 {
				parts = append(parts, g.kind+" "+strings.Join(g.as, ", "))
			}
		}
		use := "the node uses " + addr.String()
		if addr.Is6() {
			use = "the node uses IPv6, " + addr.String()
		}
		out = append(out, api.Finding{Check: "ipv6", Status: api.FindingInfo, Detail: "IPv6 on " + ifi.Name + ": " + strings.Join(parts, "; ") + "; " + use})
	}
	return out
}

// asked is one peer asked for a dial-back, and what came of it.
type asked struct {
	p   mesh.Peer
	d   mesh.DialBack
	err error
}

// dialBackPeers picks the peers to ask: the named one first if it can be
// asked, then verified online peers reached from here, by name.
func dialBackPeers(ps []mesh.Peer, first string) []mesh.Peer {
	var out []mesh.Peer
	for _, p := range ps {
		if p.Online() && p.Verified && p.Reachable {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b mesh.Peer) int {
		switch {
		case a.ID == first && b.ID != first:
			return -1
		case b.ID == first && a.ID != first:
			return 1
		}
		return 0
	})
	return out[:min(len(out), doctorDialBacks)]
}

// askDialBacks asks each of ps, at once, to dial this node back.
func (n *Node) askDialBacks(ctx context.Context, ps []mesh.Peer) []asked {
	ctx, cancel := context.WithTimeout(ctx, doctorAskTimeout)
	defer cancel()
	out := make([]asked, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			d, err := n.mesh.AskDialBack(ctx, p.ID)
			out[i] = asked{p: p, d: d, err: err}
		})
	}
	wg.Wait()
	return out
}

// dialBackFindings: what the peers asked reached of this node's ports,
// whether they heard its mDNS, and how far their clocks are.
func dialBackFindings(as []asked, gport, tport int, mdnsOn bool) []api.Finding {
	if len(as) == 0 {
		return []api.Finding{{Check: "dial-back", Status: api.FindingInfo,
			Detail: "no verified peer is online to ask whether this node's ports are reachable from outside"}}
	}
	var out []api.Finding
	var answered []asked
	for _, a := range as {
		switch {
		case a.err != nil:
			out = append(out, api.Finding{Check: "dial-back", Status: api.FindingInfo,
				Detail: fmt.Sprintf("could not ask %s to dial back: %v", a.p.Name, a.err)})
		case a.d.Refused != "":
			why := map[string]string{
				mesh.DialBackRateLimited: "asked too often; ask again in a few seconds",
				mesh.DialBackBusy:        "it is busy with other dial-backs; ask again",
				mesh.DialBackUnknown:     "it does not know this node as a peer yet",
			}[a.d.Refused]
			if why == "" {
				why = a.d.Refused
			}
			out = append(out, api.Finding{Check: "dial-back", Status: api.FindingInfo, Detail: a.p.Name + " did not dial back: " + why})
		default:
			answered = append(answered, a)
		}
	}
	if len(answered) == 0 {
		return out
	}
	type port struct {
		check, what string
		get         func(mesh.DialBack) mesh.ProbeResult
	}
	result := map[string]bool{}
	for _, pt := range []port{
		{"dial-back-udp", fmt.Sprintf("gossip port %d over UDP", gport), func(d mesh.DialBack) mesh.ProbeResult { return d.UDP }},
		{"dial-back-tcp", fmt.Sprintf("gossip port %d over TCP", gport), func(d mesh.DialBack) mesh.ProbeResult { return d.TCP }},
		{"dial-back-message-port", fmt.Sprintf("message port %d (TCP)", tport), func(d mesh.DialBack) mesh.ProbeResult { return d.TLS }},
	} {
		var ok, bad []string
		for _, a := range answered {
			r := pt.get(a.d)
			if r.OK {
				ok = append(ok, fmt.Sprintf("%s in %s", a.p.Name, (time.Duration(r.RTT)*time.Microsecond).Round(time.Microsecond)))
			} else {
				bad = append(bad, a.p.Name+": "+r.Err)
			}
		}
		result[pt.check] = len(bad) == 0
		f := api.Finding{Check: pt.check, Status: api.FindingOK, Detail: "this node's " + pt.what + " is reached from " + strings.Join(ok, ", ")}
		if len(bad) > 0 {
			f.Status = api.FindingWarn
			f.Detail = "this node's " + pt.what + " is not reached from " + strings.Join(bad, "; ")
			if len(ok) > 0 {
				f.Detail += " (but from " + strings.Join(ok, ", ") + ")"
			}
		}
		out = append(out, f)
	}
	// Fixes, now that all three are known: UDP dropped with TCP fine is
	// the classic firewall that lets "connections" in and drops the rest.
	for i := range out {
		f := &out[i]
		if f.Status == api.FindingOK {
			continue
		}
		switch f.Check {
		case "dial-back-udp":
			if result["dial-back-tcp"] {
				f.Detail += ": a firewall on this machine (or before it) drops UDP; gossip falls back to TCP, so presence works, but failures are noticed later and every probe costs a connection"
			}
			f.Fix = fmt.Sprintf("allow UDP port %d in this machine's firewall (e.g. ufw allow %d/udp)", gport, gport)
		case "dial-back-tcp":
			f.Status = api.FindingFail
			f.Detail += ": others cannot exchange the full member list with this node"
			f.Fix = fmt.Sprintf("allow TCP port %d in this machine's firewall (e.g. ufw allow %d/tcp)", gport, gport)
		case "dial-back-message-port":
			f.Status = api.FindingFail
			f.Detail += ": messages and files to this node wait in the senders' outboxes"
			f.Fix = fmt.Sprintf("allow TCP port %d in this machine's firewall (e.g. ufw allow %d/tcp)", tport, tport)
		}
	}
	if mdnsOn {
		var heard, not []string
		for _, a := range answered {
			if a.d.HeardMDNS {
				heard = append(heard, fmt.Sprintf("%s (%s ago)", a.p.Name, a.d.MDNSAgo.Round(time.Second)))
			} else {
				not = append(not, a.p.Name)
			}
		}
		switch {
		case len(not) == 0:
			out = append(out, api.Finding{Check: "mdns-heard", Status: api.FindingOK, Detail: "this node's mDNS advertisement was heard by " + strings.Join(heard, ", ")})
		case len(heard) == 0:
			out = append(out, api.Finding{Check: "mdns-heard", Status: api.FindingWarn,
				Detail: "no peer asked has heard this node's mDNS advertisement (" + strings.Join(not, ", ") + "): they know it by gossip only",
				Fix:    "multicast does not reach them (Wi-Fi multicast filtering, another VLAN, a firewall on UDP 5353): keep --join, or allow mDNS between the machines"})
		default:
			out = append(out, api.Finding{Check: "mdns-heard", Status: api.FindingInfo,
				Detail: "this node's mDNS advertisement was heard by " + strings.Join(heard, ", ") + ", not by " + strings.Join(not, ", ") + " (they know it by gossip)"})
		}
	}
	out = append(out, clockFindings(answered)...)
	return out
}

// clockFindings: each answering peer's clock against ours.
func clockFindings(as []asked) []api.Finding {
	var out []api.Finding
	var agree []string
	for _, a := range as {
		off, unc := a.d.Offset, a.d.Uncertainty
		abs := off
		if abs < 0 {
			abs = -abs
		}
		if abs-unc <= clockWarn {
			agree = append(agree, a.p.Name)
			continue
		}
		dir := "ahead of"
		if off < 0 {
			dir = "behind"
		}
		out = append(out, api.Finding{Check: "clock", Status: api.FindingWarn,
			Detail: fmt.Sprintf("%s's clock is %s %s this machine's (±%s): messages stay in order (hybrid clocks), but receipt times and \"last seen\" read oddly", a.p.Name, abs.Round(time.Second), dir, unc.Round(time.Millisecond)),
			Fix:    "turn on time synchronisation (NTP: timedatectl set-ntp true) on whichever machine is wrong"})
	}
	if len(agree) > 0 {
		out = append(out, api.Finding{Check: "clock", Status: api.FindingOK,
			Detail: fmt.Sprintf("clock agrees within %s with %s", clockWarn, strings.Join(agree, ", "))})
	}
	return out
}

// ourPrefixes are the subnets of this machine's interfaces that are up,
// loopback left out.
func ourPrefixes() []netip.Prefix {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, fi := range ifaces {
		if fi.Flags&net.FlagUp == 0 || fi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := fi.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

// peerAddrs are the addresses this node knows for p: gossip's (or the
// contact book's), mDNS's last claim, the address remembered from an
// earlier run; each once, with where it comes from.
func (n *Node) peerAddrs(p mesh.Peer) (addrs []netip.Addr, lines []string) {
	add := func(a netip.Addr, line string) {
		if !a.IsValid() || a.IsUnspecified() {
			return
		}
		lines = append(lines, line)
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if p.Addr.IsValid() {
		add(p.Addr, fmt.Sprintf("%s (gossip port %d, message port %d; from gossip)", p.Addr, p.GossipPort, p.TLSPort))
	}
	if at, ap, ok := n.mesh.HeardByMDNS(p.ID); ok {
		add(ap.Addr(), fmt.Sprintf("%s (claimed on mDNS %s ago)", ap, time.Since(at).Round(time.Second)))
	}
	for _, k := range n.mesh.KnownAddrs() {
		if k.ID == p.ID && k.TLS.Addr() != p.Addr {
			add(k.TLS.Addr(), fmt.Sprintf("%s (verified there %s ago)", k.Gossip, time.Since(k.Seen).Round(time.Second)))
		}
	}
	return addrs, lines
}

// peerHowFindings: where p's addresses are, how it was last seen, and
// whether it is on a subnet of ours.
func (n *Node) peerHowFindings(p mesh.Peer) []api.Finding {
	var out []api.Finding
	addrs, lines := n.peerAddrs(p)
	if len(lines) > 0 {
		out = append(out, api.Finding{Check: "peer-addresses", Status: api.FindingInfo, Detail: "last known addresses: " + strings.Join(lines, "; ")})
	}
	var how []string
	switch {
	case p.LastSeen.IsZero():
	case p.Online() && p.Verified:
		how = append(how, "online in gossip, its key proven by a handshake")
	case p.Online():
		how = append(how, "online in gossip, its key not proven yet")
	case p.State == mesh.Left:
		how = append(how, fmt.Sprintf("left (said goodbye) %s ago", time.Since(p.LastSeen).Round(time.Second)))
	default:
		how = append(how, fmt.Sprintf("lost without a goodbye %s ago (crash, cable, Wi-Fi, or a network in between)", time.Since(p.LastSeen).Round(time.Second)))
	}
	if at, _, ok := n.mesh.HeardByMDNS(p.ID); ok {
		how = append(how, fmt.Sprintf("last heard on mDNS %s ago", time.Since(at).Round(time.Second)))
	} else if !n.cfg.NoMDNS {
		how = append(how, "never heard on mDNS by this node")
	}
	if p.Addr.IsValid() {
		for _, s := range n.seeds {
			if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr() == p.Addr {
				how = append(how, "its address is a --join seed ("+s+")")
			}
		}
	}
	if len(how) > 0 {
		out = append(out, api.Finding{Check: "peer-seen", Status: api.FindingInfo, Detail: p.Name + ": " + strings.Join(how, "; ")})
	}
	// The subnet is judged on where the peer is now: gossip's address
	// while it is online, else the newer of that and mDNS's last claim.
	now, port := addrs, p.GossipPort
	if len(addrs) > 0 && !p.Online() {
		now = addrs[:1]
		if at, ap, ok := n.mesh.HeardByMDNS(p.ID); ok && (at.After(p.LastSeen) || !p.Addr.IsValid()) {
			now, port = []netip.Addr{ap.Addr()}, ap.Port()
		}
	} else if p.Addr.IsValid() {
		now = []netip.Addr{p.Addr}
	}
	if f, ok := subnetFinding(p, now, port, ourPrefixes()); ok {
		out = append(out, f)
	}
	return out
}

// subnetFinding says so when none of p's addresses is in a subnet of ours:
// unicast then needs a router, and mDNS (link-local multicast) crosses
// none, so the peer is found only by --join.
// port is the gossip port to --join.
func subnetFinding(p mesh.Peer, addrs []netip.Addr, port uint16, ours []netip.Prefix) (api.Finding, bool) {
	if len(addrs) == 0 || len(ours) == 0 {
		return api.Finding{}, false
	}
	var mine []string
	for _, o := range ours {
		for _, a := range addrs {
			if o.Contains(a.WithZone("")) || a.IsLoopback() {
				return api.Finding{}, false // a loopback peer is on this machine
			}
		}
		mine = append(mine, o.String())
	}
	var theirs []string
	for _, a := range addrs {
		theirs = append(theirs, a.String())
	}
	f := api.Finding{Check: "peer-subnet", Status: api.FindingWarn,
		Detail: fmt.Sprintf("%s is on another subnet: %s is in none of this machine's (%s), so packets to it need a router, and mDNS does not cross one",
			p.Name, strings.Join(theirs, ", "), strings.Join(mine, ", ")),
		Fix: fmt.Sprintf("if a router joins the subnets, start with --join %s (mDNS will not find it); if none does, ask for a route, or put both machines on one network",
			netip.AddrPortFrom(addrs[0], cmp.Or(port, mesh.DefaultGossipPort)).String())}
	if p.Online() && p.Reachable {
		f.Status = api.FindingInfo
		f.Detail = fmt.Sprintf("%s is on another subnet (%s, none of ours: %s) and reached through a router", p.Name, strings.Join(theirs, ", "), strings.Join(mine, ", "))
		f.Fix = "keep its address in --join: mDNS does not cross routers"
	}
	return f, true
}

// othersSeeFindings asks a few verified peers online here for their view
// of p (their directory), when this node sees p offline: do others see
// it when we do not?
func (n *Node) othersSeeFindings(ctx context.Context, p mesh.Peer, ps []mesh.Peer) []api.Finding {
	if p.Online() {
		return nil // seen here; peer-seen-by-others tells of an unreachable one
	}
	var ask []mesh.Peer
	for _, q := range ps {
		if q.ID != p.ID && q.Online() && q.Verified && q.Reachable {
			ask = append(ask, q)
		}
	}
	ask = ask[:min(len(ask), doctorDirAsks)]
	if len(ask) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout*2)
	defer cancel()
	sees := make([]int, len(ask)) // 1 online there, 0 not, -1 no answer
	var wg sync.WaitGroup
	for i, q := range ask {
		wg.Go(func() {
			dir, err := n.mesh.Dialer().FetchDirectory(ctx, netip.AddrPortFrom(q.Addr, q.TLSPort).String(), q.ID)
			if err != nil {
				sees[i] = -1
				return
			}
			for _, e := range dir {
				if e.ID == p.ID && e.Online() {
					sees[i] = 1
				}
			}
		})
	}
	wg.Wait()
	var yes, no, silent []string
	for i, q := range ask {
		switch sees[i] {
		case 1:
			yes = append(yes, q.Name)
		case 0:
			no = append(no, q.Name)
		default:
			silent = append(silent, q.Name)
		}
	}
	if len(yes) > 0 {
		return []api.Finding{{Check: "peer-seen-by-others", Status: api.FindingWarn,
			Detail: fmt.Sprintf("%s is online for %s, but not here", p.Name, strings.Join(yes, ", ")),
			Fix:    "something between this machine and " + p.Name + "'s drops the traffic (a firewall, a VLAN, another subnet): the others reach it, so look between the two"}}
	}
	if len(no) == 0 {
		return []api.Finding{{Check: "peer-seen-by-others", Status: api.FindingInfo,
			Detail: "could not ask others whether they see " + p.Name + " (" + strings.Join(silent, ", ") + " did not answer)"}}
	}
	return []api.Finding{{Check: "peer-seen-by-others", Status: api.FindingInfo,
		Detail: fmt.Sprintf("%s is offline for %s too: it is off the network, not hidden from this machine", p.Name, strings.Join(no, ", "))}}
}

// doctorIface is an interface in use, with the address mDNS speaks from
// there.
type doctorIface struct {
	ifi  *net.Interface
	addr netip.Addr
}

// doctorUsed are the interfaces the node advertises on, as last scanned
// (several with the address set; the one of --bind, if it is an
// interface's; none for loopback).
func (n *Node) doctorUsed() []doctorIface {
	var out []doctorIface
	for _, u := range n.addrSet().Used {
		ifi, err := net.InterfaceByName(u.Name)
		if err != nil || len(u.Prefixes) == 0 {
			continue // gone since the scan
		}
		addr := u.Prefixes[0].Addr()
		for _, p := range u.Prefixes {
			if p.Addr().Is4() {
				addr = p.Addr()
				break
			}
		}
		out = append(out, doctorIface{ifi: ifi, addr: addr})
	}
	if len(out) == 0 && n.ifi != nil {
		out = append(out, doctorIface{ifi: n.ifi, addr: n.addr})
	}
	return out
}

// doctorIfaces are the interfaces of doctorUsed.
func (n *Node) doctorIfaces() []*net.Interface {
	var out []*net.Interface
	for _, u := range n.doctorUsed() {
		out = append(out, u.ifi)
	}
	return out
}

// multicastRouted reads the kernel's IPv4 routing table (/proc/net/route):
// is there a route that covers mDNS's group, and out of which interface?
// A socket bound to a local address finds one either way (the kernel sends
// multicast from a bound source out of that address's interface, routes or
// not), so this is the only way to see a missing route.
func multicastRouted() (iface string, ok bool, err error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", false, err
	}
	g := mdnsGroup.Addr().As4()
	group := uint32(g[0]) | uint32(g[1])<<8 | uint32(g[2])<<16 | uint32(g[3])<<24 // the file's byte order
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		mask, err3 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || flags&1 == 0 { // RTF_UP
			continue
		}
		if group&uint32(mask) == uint32(dst)&uint32(mask) {
			return f[0], true, nil
		}
	}
	return "", false, nil
}

// checkMulticastRoute rewrites multicastFindings' route verdict when the
// routing table has no route for multicast: that check dials from the
// node's own address, which the kernel lets out without a route. lanchat
// itself names the interface for every mDNS socket, so it still works;
// what does not is any program (or node started without an interface)
// that relies on the table.
func checkMulticastRoute(fs []api.Finding, ifi *net.Interface) {
	if ifi == nil {
		return
	}
	if _, ok, err := multicastRouted(); err != nil || ok {
		return
	}
	for i := range fs {
		if fs[i].Check == "multicast-route" && fs[i].Status == api.FindingOK {
			fs[i] = api.Finding{Check: "multicast-route", Status: api.FindingWarn,
				Detail: "no route for multicast (224.0.0.0/4) in the routing table: this node still sends and hears mDNS on " + ifi.Name +
					", which it names, but other mDNS programs and a node started without an interface cannot",
				Fix: "ip route add 224.0.0.0/4 dev " + ifi.Name + " (or add a default route)"}
		}
	}
}

// blameUDP corrects peer-gossip-udp when this node's own gossip port is
// not reached by UDP either (dial-back-udp): a memberlist ping's answer
// comes back to that port, so a firewall here that drops UDP makes every
// peer look silent. The drop is then most likely on this machine.
func blameUDP(fs []api.Finding, gport int) {
	ours := false
	for _, f := range fs {
		if f.Check == "dial-back-udp" && f.Status != api.FindingOK {
			ours = true
		}
	}
	if !ours {
		return
	}
	for i := range fs {
		if fs[i].Check == "peer-gossip-udp" && fs[i].Status != api.FindingOK {
			fs[i].Detail += "; but this machine's own gossip port is not reached by UDP either (dial-back-udp), and the answer comes back to it: the drop is most likely on this machine"
			fs[i].Fix = fmt.Sprintf("allow UDP port %d in this machine's firewall first", gport)
		}
	}
}
