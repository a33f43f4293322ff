package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/ratelimit"
)

// Dial-back: lanchat doctor asks a verified peer to dial this node's
// ports back, which is the only way to learn whether they are reachable
// from outside (a firewall on this machine drops what it receives, not
// what it sends). The exchange is on its own ALPN, ALPNDoctor: the asker
// writes one request, the server dials the asker and writes one reply.
//
// The server must not become a reflector that a hostile peer aims at a
// third party, nor a port scanner: it dials only the IP address the
// asking stream comes from (never an address the request names: it names
// none), and only on the two ports the asker's signed gossip metadata
// announces, so an asker it does not know as a peer gets no dial. Each
// source address is served at most dialBackBurst times at once and once
// every 1/dialBackRate seconds after that; at most dialBackServing
// requests are served at once; the request is read within
// dialBackIOTimeout and at most maxDialBackRequest bytes, and every probe
// is bounded by dialBackProbeTimeout.
// ALPNDoctor is the protocol of dial-back streams.
const ALPNDoctor = "lanchat/doctor/1"

const (
	dialBackRate         = 0.2 // requests a second per source address, after the burst
	dialBackBurst        = 3
	dialBackServing      = 2
	dialBackIOTimeout    = 5 * time.Second
	dialBackProbeTimeout = 2 * time.Second
	dialBackPings        = 3 // UDP pings at most, one after another
	maxDialBackRequest   = 256
	maxDialBackReply     = 4096
	dialBackVersion      = 1
)

// Why a server refused a dial-back, as the reply's "refused" says.
const (
	DialBackRateLimited = "rate"    // this source asked too often
	DialBackBusy        = "busy"    // too many dial-backs being served
	DialBackUnknown     = "unknown" // the asker is not a peer the server knows
)

// dialBackRequest is what the asker writes: nothing but the version, so
// that the server has nothing to be told where to dial.
type dialBackRequest struct {
	V int `json:"v"`
}

// dialBackReply is what the server writes back.
type dialBackReply struct {
	V       int    `json:"v"`
	Refused string `json:"refused,omitempty"`
	// Addr is the address the server dialled: the asking stream's source.
	Addr string `json:"addr,omitempty"`
	// Rx and Tx are the server's clock, Unix microseconds, when it read
	// the request and when it wrote this reply.
	Rx int64 `json:"rx"`
	Tx int64 `json:"tx"`
	// UDP, TCP and TLS are the probes of the asker's gossip port (a
	// memberlist ping), gossip port by TCP, and message port (a handshake
	// expecting the asker's key).
	UDP *ProbeResult `json:"udp,omitempty"`
	TCP *ProbeResult `json:"tcp,omitempty"`
	TLS *ProbeResult `json:"tls,omitempty"`
	// MDNSAgo is how long ago, in milliseconds, the server last heard an
	// mDNS answer for the asker's id; -1 if it never did.
	MDNSAgo int64 `json:"mdns_ago_ms"`
}

// ProbeResult is one port probed by a dial-back.
type ProbeResult struct {
	OK bool `json:"ok"`
	// RTT is in microseconds.
	RTT int64 `json:"rtt_us,omitempty"`
	// Err says why the probe failed, in a few words: "timeout",
	// "refused", "unreachable", "wrong key", or an error's text.
	Err string `json:"err,omitempty"`
}

// DialBack is what a peer found when it dialled this node back.
type DialBack struct {
	// Peer answered; Addr is where it dialled this node.
	Peer string
	Addr netip.Addr
	// Refused, if not empty, is why the peer did not dial (one of the
	// DialBack* reasons); nothing else is set then but Offset.
	Refused string
	// UDP, TCP and TLS: this node's gossip port by UDP and TCP, and its
	// message port, as the peer reached them.
	UDP, TCP, TLS ProbeResult
	// Offset is the peer's clock minus this node's, and Uncertainty the
	// most that estimate can be off (half the exchange's round trip, the
	// peer's own time taken out), as NTP computes them.
	Offset, Uncertainty time.Duration
	// HeardMDNS says whether the peer has heard this node on mDNS, and
	// MDNSAgo how long ago it last did.
	HeardMDNS bool
	MDNSAgo   time.Duration
}

// doctorState is the mesh's part of lanchat doctor: the dial-back
// server's limits and what mDNS said of whom. Its zero value is ready.
type doctorState struct {
	once    sync.Once
	perAddr *ratelimit.Keyed[netip.Addr] // dial-back requests, by source
	serving chan struct{}                // dial-backs being served; capacity dialBackServing
	heard   sightings                    // mDNS answers heard, by peer id
}

func (d *doctorState) init() {
	d.once.Do(func() {
		d.perAddr = ratelimit.New[netip.Addr](dialBackRate, dialBackBurst, maxBuckets, ratelimit.Refuse, nil)
		d.serving = make(chan struct{}, dialBackServing)
	})
}

// serveDoctor answers a lanchat/doctor/1 stream (see above).
func (m *Mesh) serveDoctor(s *Stream) {
	defer s.Close()
	m.doc.init()
	src := remoteIP(s.Conn)
	reply := func(r dialBackReply) {
		r.V = dialBackVersion
		r.Tx = time.Now().UnixMicro()
		b, err := json.Marshal(r)
		if err != nil {
			return
		}
		s.SetWriteDeadline(time.Now().Add(dialBackIOTimeout))
		if _, err := s.Write(append(b, '\n')); err != nil {
			m.log.Debug("dial-back reply", "peer", ShortID(s.PeerID()), "err", err)
		}
	}
	if !m.doc.perAddr.Allow(src) {
		m.log.Debug("refusing a dial-back: asked too often", "remote", s.Conn.RemoteAddr(), "peer", ShortID(s.PeerID()))
		reply(dialBackReply{Refused: DialBackRateLimited, Rx: time.Now().UnixMicro()})
		return
	}
	s.SetReadDeadline(time.Now().Add(dialBackIOTimeout))
	if err := readDialBackRequest(s); err != nil {
		m.log.Debug("refusing a dial-back: bad request", "remote", s.Conn.RemoteAddr(), "peer", ShortID(s.PeerID()), "err", err)
		return
	}
	rx := time.Now().UnixMicro()
	select {
	case m.doc.serving <- struct{}{}:
		defer func() { <-m.doc.serving }()
	default:
		reply(dialBackReply{Refused: DialBackBusy, Rx: rx})
		return
	}
	id := s.PeerID()
	m.mu.Lock()
	e := m.table.peers[id]
	var member string
	var gport, tport uint16
	if e != nil && e.alive {
		member, gport, tport = e.member, e.GossipPort, e.TLSPort
	}
	ml := m.ml
	m.mu.Unlock()
	if member == "" || gport == 0 || tport == 0 {
		reply(dialBackReply{Refused: DialBackUnknown, Rx: rx})
		return
	}
	// The stream's own source, zone kept: a link-local asker is dialled
	// on the interface it came in on.
	at := src
	if ap, err := netip.ParseAddrPort(s.Conn.RemoteAddr().String()); err == nil {
		at = ap.Addr().Unmap()
	}
	// Probes end with the mesh, so Close does not wait them out.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	udp, tcp, tls := m.probePorts(ctx, ml, id, member, at, gport, tport)
	r := dialBackReply{Addr: at.String(), Rx: rx, UDP: &udp, TCP: &tcp, TLS: &tls, MDNSAgo: -1}
	if h, ok := m.doc.heard.last(id); ok {
		r.MDNSAgo = time.Since(h.at).Milliseconds()
	}
	reply(r)
}

// probePorts probes, at once, a peer's gossip port by UDP (memberlist's
// ping, which only the run named member answers) and TCP, and its message
// port by a handshake expecting id's key, each within
// dialBackProbeTimeout.
func (m *Mesh) probePorts(ctx context.Context, ml *memberlist.Memberlist, id, member string, at netip.Addr, gport, tport uint16) (udp, tcp, tls ProbeResult) {
	ctx, cancel := context.WithTimeout(ctx, dialBackProbeTimeout)
	defer cancel()
	gossip := netip.AddrPortFrom(at, gport)
	var wg sync.WaitGroup
	wg.Go(func() {
		if ml == nil {
			udp.Err = "gossip is not running"
			return
		}
		// One lost datagram is no firewall: ask up to dialBackPings
		// times (each waits memberlist's probe timeout) within the bound.
		var err error
		for try := 0; try < dialBackPings && ctx.Err() == nil; try++ {
			start := time.Now()
			var rtt time.Duration
			if rtt, err = ml.Ping(member, net.UDPAddrFromAddrPort(gossip)); err == nil {
				if rtt <= 0 {
					rtt = time.Since(start)
				}
				udp = probeResult(rtt, nil)
				return
			}
		}
		if err == nil {
			err = ctx.Err()
		}
		udp = probeResult(0, err)
	})
	wg.Go(func() {
		start := time.Now()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", gossip.String())
		if err == nil {
			c.Close()
		}
		tcp = probeResult(time.Since(start), err)
	})
	wg.Go(func() {
		start := time.Now()
		s, err := m.dialer.DialAddr(ctx, net.JoinHostPort(at.String(), strconv.Itoa(int(tport))), id, ALPNPing)
		if err == nil {
			s.Close()
		}
		tls = probeResult(time.Since(start), err)
	})
	wg.Wait()
	return udp, tcp, tls
}

func probeResult(rtt time.Duration, err error) ProbeResult {
	if err == nil {
		return ProbeResult{OK: true, RTT: max(rtt.Microseconds(), 1)}
	}
	return ProbeResult{Err: ProbeErrWord(err)}
}

// ProbeErrWord names a failed dial in one word where it can.
func ProbeErrWord(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrWrongPeer):
		return "wrong key"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case strings.HasPrefix(err.Error(), "No response from node"): // memberlist's Ping
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// AskDialBack asks the verified peer id to dial this node's ports back
// (see above), and estimates the offset of its clock from the exchange.
// err is for a peer that cannot be asked at all: unknown, offline, or
// not answering on its message port.
func (m *Mesh) AskDialBack(ctx context.Context, id string) (DialBack, error) {
	s, err := m.Dial(ctx, id, ALPNDoctor)
	if err != nil {
		return DialBack{}, err
	}
	defer s.Close()
	// The server probes for at most dialBackProbeTimeout once it has the
	// request; the rest is for a loaded machine.
	s.SetDeadline(time.Now().Add(dialBackIOTimeout + dialBackProbeTimeout))
	b, _ := json.Marshal(dialBackRequest{V: dialBackVersion})
	t0 := time.Now()
	if _, err := s.Write(append(b, '\n')); err != nil {
		return DialBack{}, fmt.Errorf("ask %s to dial back: %w", ShortID(id), err)
	}
	return readDialBackReply(s, s.PeerID(), t0)
}

// readDialBackRequest reads a request, at most maxDialBackRequest bytes.
func readDialBackRequest(r io.Reader) error {
	var req dialBackRequest
	if err := json.NewDecoder(io.LimitReader(r, maxDialBackRequest)).Decode(&req); err != nil {
		return err
	}
	if req.V != dialBackVersion {
		return fmt.Errorf("version %d", req.V)
	}
	return nil
}

// readDialBackReply reads peer's reply, at most maxDialBackReply bytes,
// to a request sent at t0.
func readDialBackReply(rd io.Reader, peer string, t0 time.Time) (DialBack, error) {
	var r dialBackReply
	if err := json.NewDecoder(io.LimitReader(rd, maxDialBackReply)).Decode(&r); err != nil {
		return DialBack{}, fmt.Errorf("dial-back reply of %s: %w", ShortID(peer), err)
	}
	return dialBackOf(peer, r, t0, time.Now())
}

// dialBackOf reads a reply received at t1 to a request sent at t0.
func dialBackOf(peer string, r dialBackReply, t0, t1 time.Time) (DialBack, error) {
	if r.V != dialBackVersion {
		return DialBack{}, fmt.Errorf("dial-back reply of %s: version %d", ShortID(peer), r.V)
	}
	d := DialBack{Peer: peer, Refused: r.Refused}
	if r.Rx != 0 && r.Tx >= r.Rx {
		rx, tx := time.UnixMicro(r.Rx), time.UnixMicro(r.Tx)
		d.Offset = (rx.Sub(t0) + tx.Sub(t1)) / 2
		d.Uncertainty = max(t1.Sub(t0)-tx.Sub(rx), 0) / 2
	}
	if r.Refused != "" {
		return d, nil
	}
	if r.UDP == nil || r.TCP == nil || r.TLS == nil {
		return DialBack{}, fmt.Errorf("dial-back reply of %s: a probe is missing", ShortID(peer))
	}
	d.UDP, d.TCP, d.TLS = *r.UDP, *r.TCP, *r.TLS
	if a, err := netip.ParseAddr(r.Addr); err == nil {
		d.Addr = a
	}
	if r.MDNSAgo >= 0 {
		d.HeardMDNS, d.MDNSAgo = true, time.Duration(r.MDNSAgo)*time.Millisecond
	}
	return d, nil
}
