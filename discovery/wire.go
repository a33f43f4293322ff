package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// mDNS on the wire, on github.com/miekg/dns: the responder (which also
// announces, says goodbye and hears others' announcements) and the
// querier. hashicorp/mdns is used only for the records of the zone.

// mDNS addresses (RFC 6762 §3).
var (
	groupV4 = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: mdnsPort}
	groupV6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: mdnsPort}
)

const (
	mdnsPort = 5353
	// maxPacket is the largest mDNS message read (RFC 6762 §17: 9000
	// bytes); a longer datagram is cut, fails to parse and is dropped.
	maxPacket = 9000
	// maxQueryPacket bounds the queries this node sends, known answers
	// included, so each fits one Ethernet frame.
	maxQueryPacket = 1400
	// maxRecords is the most records of one message looked at; the rest
	// is ignored.
	maxRecords = 64
	// maxInstances is the most instances taken from one message.
	maxInstances = 16
	// recordTTL is the TTL of the records advertised, in seconds (that
	// of the zone's records).
	recordTTL = 120
	// announceGap is the gap between the two announcements at start
	// (RFC 6762 §8.3: at least two, one second apart).
	announceGap = time.Second
	// answerRate bounds the responses the responder sends a second
	// (with as large a burst), so a flood of queries cannot make it a
	// flood of answers; announceRate bounds the announcements heard that
	// are handed on as candidates.
	answerRate   = 50
	announceRate = 32
	// maxKnown bounds the instances remembered for known answers.
	maxKnown = 1024
)

// serviceFQDN is the service's name as a DNS name.
const serviceFQDN = ServiceName + "." + Domain + "."

// answer is one instance described by a message: its name, TXT strings
// and addresses (A and AAAA records of its host), before validation.
type answer struct {
	name  string
	txt   []string
	addrs []netip.Addr
	ttl   uint32 // of its PTR (or SRV, TXT) record
}

// parseAnswers reads the instances a response describes, from its answer
// and additional sections. Instance names come from PTR targets (of any
// owner: candidate filters by name) and from SRV and TXT owners; records
// with a TTL of 0 (goodbyes) are skipped. zone is given to link-local
// IPv6 addresses. Everything is bounded: at most maxRecords records and
// maxInstances instances.
func parseAnswers(msg *dns.Msg, zone string) []answer {
	rrs := append(append([]dns.RR(nil), msg.Answer...), msg.Extra...)
	if len(rrs) > maxRecords {
		rrs = rrs[:maxRecords]
	}
	type inst struct {
		answer
		target string
	}
	var order []string
	insts := map[string]*inst{}
	get := func(name string, ttl uint32) *inst {
		key := strings.ToLower(name)
		if i := insts[key]; i != nil {
			return i
		}
		if len(insts) >= maxInstances {
			return nil
		}
		i := &inst{answer: answer{name: name, ttl: ttl}}
		insts[key] = i
		order = append(order, key)
		return i
	}
	hosts := map[string][]netip.Addr{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Ttl == 0 {
			continue
		}
		switch r := rr.(type) {
		case *dns.PTR:
			get(r.Ptr, h.Ttl)
		case *dns.SRV:
			if i := get(h.Name, h.Ttl); i != nil {
				i.target = strings.ToLower(r.Target)
			}
		case *dns.TXT:
			if i := get(h.Name, h.Ttl); i != nil && i.txt == nil {
				i.txt = append([]string{}, r.Txt...)
			}
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				k := strings.ToLower(h.Name)
				hosts[k] = append(hosts[k], a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA.To16()); ok {
				a = a.Unmap()
				if a.Is6() && a.IsLinkLocalUnicast() {
					a = a.WithZone(zone)
				}
				k := strings.ToLower(h.Name)
				hosts[k] = append(hosts[k], a)
			}
		}
	}
	out := make([]answer, 0, len(order))
	for _, k := range order {
		i := insts[k]
		if i.target != "" {
			// A copy: instances sharing a host must not share an array
			// that a receiver appending to one would write into the
			// other's. Nothing here touches an answer once it is handed
			// on; each message is parsed into new values (hashicorp/mdns
			// updated an answer it had handed over when a second one of
			// the same name came within one query: a data race any host
			// could set off).
			i.addrs = slices.Clone(hosts[i.target])
		}
		out = append(out, i.answer)
	}
	return out
}

// knownAnswers remembers, for each instance heard of, until when its PTR
// record is valid, so that queries can list it (RFC 6762 §7.1) and the
// answerers that know they are known keep quiet.
type knownAnswers struct {
	mu     sync.Mutex // guards expiry
	expiry map[string]knownPTR
}

type knownPTR struct {
	until time.Time // when the record expires
	half  time.Time // when half its TTL is gone: then it is no longer listed
}

// remove forgets name (its goodbye was heard).
func (k *knownAnswers) remove(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.expiry, strings.ToLower(name))
}

func (k *knownAnswers) add(name string, ttl uint32, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.expiry == nil {
		k.expiry = make(map[string]knownPTR)
	}
	if len(k.expiry) >= maxKnown {
		for n, e := range k.expiry {
			if now.After(e.until) {
				delete(k.expiry, n)
			}
		}
		if len(k.expiry) >= maxKnown {
			return
		}
	}
	d := time.Duration(min(ttl, 4*3600)) * time.Second
	k.expiry[strings.ToLower(name)] = knownPTR{until: now.Add(d), half: now.Add(d / 2)}
}

// list returns the PTR records to put in a query's answer section at now:
// those with more than half their TTL left, with the TTL left. Responders
// leave those out of their answers, so a query yields only the nodes that
// are new to this one, or that it has not heard of for half a TTL; a
// candidate whose join failed comes again then.
func (k *knownAnswers) list(now time.Time) []dns.RR {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []dns.RR
	for name, e := range k.expiry {
		if now.After(e.until) {
			delete(k.expiry, name)
			continue
		}
		if now.After(e.half) {
			continue
		}
		out = append(out, &dns.PTR{
			Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: uint32(e.until.Sub(now) / time.Second)},
			Ptr: name,
		})
	}
	return out
}

// newQuery builds the query for the service, with as many of known as fit
// in maxQueryPacket.
func newQuery(known []dns.RR) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(serviceFQDN, dns.TypePTR)
	q.RecursionDesired = false
	q.Compress = true
	for _, rr := range known {
		q.Answer = append(q.Answer, rr)
		if q.Len() > maxQueryPacket {
			q.Answer = q.Answer[:len(q.Answer)-1]
			break
		}
	}
	return q
}

// query sends one query (over IPv6 if v6) from an ephemeral port, so that
// responders answer it by unicast, and hands every answer received within
// window to out.
func (m *MDNS) query(ctx context.Context, out chan<- answer, window time.Duration, v6 bool) error {
	network, group := "udp4", groupV4
	if v6 {
		network, group = "udp6", groupV6
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	if m.cfg.Iface != nil {
		if err := setMulticastIface(conn, m.cfg.Iface, v6); err != nil {
			return err
		}
	}
	known := m.known.list(time.Now())
	msg := newQuery(known)
	buf, err := msg.Pack()
	if err != nil {
		return err
	}
	if _, err := conn.WriteToUDP(buf, group); err != nil {
		return err
	}
	m.log.Debug("discovery: query sent", "known_answers", len(msg.Answer), "window", window)
	if err := conn.SetReadDeadline(time.Now().Add(window)); err != nil {
		return err
	}
	// After the deadline is set, so that a cancel cannot be overwritten.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	pkt := make([]byte, maxPacket)
	for {
		n, from, err := conn.ReadFromUDP(pkt)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || isTimeout(err) {
				return nil
			}
			return err
		}
		resp := new(dns.Msg)
		if resp.Unpack(pkt[:n]) != nil || !resp.Response || resp.Opcode != dns.OpcodeQuery || resp.Rcode != dns.RcodeSuccess {
			continue
		}
		m.hand(ctx, out, resp, from, time.Now())
	}
}

// hand passes the answers of resp on to out, remembering them as known.
func (m *MDNS) hand(ctx context.Context, out chan<- answer, resp *dns.Msg, from *net.UDPAddr, now time.Time) {
	for i, rr := range resp.Answer {
		if p, ok := rr.(*dns.PTR); ok && p.Hdr.Ttl == 0 && i < maxRecords {
			m.known.remove(p.Ptr) // a goodbye
		}
	}
	for _, a := range parseAnswers(resp, m.zoneOf(from)) {
		if strings.HasSuffix(strings.ToLower(a.name), instanceSuffix) && a.txt != nil {
			m.known.add(a.name, a.ttl, now)
		}
		select {
		case out <- a:
		case <-ctx.Done():
			return
		default:
			m.log.Debug("discovery: answer dropped, the reader is behind", "name", a.name)
		}
	}
}

// zoneOf is the zone for link-local addresses in a message from from.
func (m *MDNS) zoneOf(from *net.UDPAddr) string {
	if m.cfg.Iface != nil {
		return m.cfg.Iface.Name
	}
	if from != nil {
		return from.Zone
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func setMulticastIface(c *net.UDPConn, iface *net.Interface, v6 bool) error {
	if v6 {
		return ipv6.NewPacketConn(c).SetMulticastInterface(iface)
	}
	return ipv4.NewPacketConn(c).SetMulticastInterface(iface)
}

// responder listens on the mDNS group (IPv4, and IPv6 where it can),
// answers questions about this node, announces it, says goodbye, and hands
// the announcements of others to out.
type responder struct {
	m     *MDNS
	zone  *mdns.MDNSService
	conns []*net.UDPConn // [0] is IPv4 when it could be opened
	out   chan<- answer
	done  chan struct{} // closed by close
	wg    sync.WaitGroup

	answers, heard bucket // rate limits; each used by one conn's goroutine at a time under mu
	mu             sync.Mutex
}

func (m *MDNS) startResponder(out chan<- answer) (*responder, error) {
	r := &responder{m: m, zone: m.zone, out: out, done: make(chan struct{}),
		answers: bucket{rate: answerRate, tokens: answerRate}, heard: bucket{rate: announceRate, tokens: announceRate}}
	c4, err4 := net.ListenMulticastUDP("udp4", m.cfg.Iface, groupV4)
	if err4 == nil {
		onlyOwnGroups(c4, false)
		r.conns = append(r.conns, c4)
	}
	c6, err6 := net.ListenMulticastUDP("udp6", m.cfg.Iface, groupV6)
	if err6 == nil {
		onlyOwnGroups(c6, true)
		r.conns = append(r.conns, c6)
	}
	if len(r.conns) == 0 {
		return nil, fmt.Errorf("listen on the mdns group: %w", err4)
	}
	for _, c := range r.conns {
		if m.cfg.Iface != nil {
			_ = setMulticastIface(c, m.cfg.Iface, c != c4 || err4 != nil)
		}
		r.wg.Go(func() { r.serve(c) })
	}
	return r, nil
}

// close stops the responder and waits for its goroutines.
func (r *responder) close() {
	close(r.done)
	for _, c := range r.conns {
		c.Close()
	}
	r.wg.Wait()
}

// announce sends this node's records, unsolicited, to the group: at once
// and again announceGap later, unless the responder closes first.
func (r *responder) announce() {
	r.send(1)
	r.wg.Go(func() {
		t := time.NewTimer(announceGap)
		defer t.Stop()
		select {
		case <-t.C:
			r.send(1)
		case <-r.done:
		}
	})
}

// goodbye sends this node's records with a TTL of 0 (RFC 6762 §10.1): a
// cache that holds them drops them.
func (r *responder) goodbye() { r.send(0) }

// send multicasts the zone's records (TTL ttlScale·recordTTL) on the first
// family the responder listens on.
func (r *responder) send(ttlScale uint32) {
	recs := r.zone.Records(dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	msg := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
	for _, rr := range recs {
		rr = dns.Copy(rr)
		rr.Header().Ttl *= ttlScale
		msg.Answer = append(msg.Answer, rr)
	}
	buf, err := msg.Pack()
	if err != nil {
		r.m.log.Debug("discovery: pack announcement", "err", err)
		return
	}
	c, group := r.conns[0], groupV4
	if c.LocalAddr().(*net.UDPAddr).IP.To4() == nil {
		group = groupV6
	}
	if _, err := c.WriteToUDP(buf, group); err != nil {
		r.m.log.Debug("discovery: send announcement", "err", err)
		return
	}
	if ttlScale == 0 {
		r.m.log.Debug("discovery: goodbye sent")
	} else {
		r.m.log.Debug("discovery: announcement sent")
	}
}

func (r *responder) serve(c *net.UDPConn) {
	pkt := make([]byte, maxPacket)
	for {
		n, from, err := c.ReadFromUDP(pkt)
		if err != nil {
			select {
			case <-r.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		msg := new(dns.Msg)
		if msg.Unpack(pkt[:n]) != nil || msg.Opcode != dns.OpcodeQuery || msg.Rcode != dns.RcodeSuccess {
			continue // RFC 6762 §18.3, §18.11: ignored
		}
		now := time.Now()
		if msg.Response {
			// Only responses from port 5353 are genuine (RFC 6762 §11).
			if from.Port != mdnsPort || !r.take(&r.heard, now) {
				continue
			}
			r.m.hand(ctxDone(r.done), r.out, msg, from, now)
			continue
		}
		r.answer(c, msg, from, now)
	}
}

// answer replies to a query, leaving out what the query lists as known
// with at least half its TTL left (RFC 6762 §7.1). A query from port
// 5353 without the QU bit gets a multicast answer; any other, a unicast
// one to where it came from, with its id and question (§6.7).
func (r *responder) answer(c *net.UDPConn, q *dns.Msg, from *net.UDPAddr, now time.Time) {
	if r.zone == nil {
		return
	}
	var recs []dns.RR
	unicast := from.Port != mdnsPort
	for i, question := range q.Question {
		if i >= maxRecords {
			break
		}
		if question.Qclass&(1<<15) != 0 {
			unicast = true
		}
		question.Qclass &^= 1 << 15
		rrs := r.zone.Records(question)
		// The zone answers a PTR question with the PTR and, as its
		// additional records, the instance's SRV, TXT and addresses: a
		// querier that knows the PTR has had those too.
		if len(rrs) > 0 && rrs[0].Header().Rrtype == dns.TypePTR && knownTo(q, rrs[0]) {
			continue
		}
		for _, rr := range rrs {
			if !knownTo(q, rr) {
				recs = append(recs, rr)
			}
		}
	}
	if len(recs) == 0 || !r.take(&r.answers, now) {
		return
	}
	resp := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Answer: recs, Compress: true}
	to := from
	if unicast {
		resp.Id = q.Id
		resp.Question = q.Question[:min(len(q.Question), 4)]
	} else {
		to = groupV4
		if from.IP.To4() == nil {
			to = groupV6
		}
	}
	buf, err := resp.Pack()
	if err != nil {
		return
	}
	_, _ = c.WriteToUDP(buf, to)
}

// knownTo reports whether q lists rr as a known answer with at least half
// of rr's TTL left.
func knownTo(q *dns.Msg, rr dns.RR) bool {
	for i, k := range q.Answer {
		if i >= maxRecords {
			return false
		}
		if k.Header().Ttl >= rr.Header().Ttl/2 && dns.IsDuplicate(k, rr) {
			return true
		}
	}
	return false
}

func (r *responder) take(b *bucket, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return b.take(now)
}

// bucket is a token bucket of rate tokens a second, holding at most rate.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ctxDone is a context that ends when done is closed.
type ctxDone <-chan struct{}

func (c ctxDone) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c ctxDone) Done() <-chan struct{}       { return c }
func (c ctxDone) Err() error {
	select {
	case <-c:
		return context.Canceled
	default:
		return nil
	}
}
func (c ctxDone) Value(any) any { return nil }
