package mesh

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"lanchat/internal/ratelimit"
)

// tlsAddr is n's message port on loopback.
func (n *testNode) tlsAddr() string {
	_, tp := n.m.Ports()
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp)).String()
}

// rawDialBack opens a lanchat/doctor/1 stream to n as d, writes req and
// returns what n answered (nil if it closed without a reply).
func rawDialBack(t *testing.T, d *Dialer, n *testNode, req string) *dialBackReply {
	t.Helper()
	s, err := d.DialAddr(context.Background(), n.tlsAddr(), n.m.ID(), ALPNDoctor)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(dialBackIOTimeout + dialBackProbeTimeout + time.Second))
	if _, err := io.WriteString(s, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(io.LimitReader(s, maxDialBackReply)).ReadBytes('\n')
	if len(line) == 0 {
		return nil
	}
	var r dialBackReply
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	return &r
}

// dialBackPair is verifiedPair with memberlist's ping timeout at its LAN
// default: the dial-back's UDP probe is a memberlist ping, and the 50 ms
// the other tests shrink it to is missed on a loaded machine.
func dialBackPair(t *testing.T) (a, b *testNode) {
	t.Helper()
	tune := func(c *Config) {
		shrunk := c.Tune
		c.Tune = func(mc *memberlist.Config) {
			shrunk(mc)
			mc.ProbeTimeout = 500 * time.Millisecond
		}
	}
	a = startNodeWith(t, t.TempDir(), "alice", tune)
	b = startNodeWith(t, t.TempDir(), "bob", tune, a.gossipAddr())
	waitFor(t, "alice and bob verify each other", 5*time.Second, func() bool {
		p, ok1 := a.peer(b.m.ID())
		q, ok2 := b.peer(a.m.ID())
		return ok1 && ok2 && p.Verified && q.Verified
	})
	return a, b
}

// askReachingUDP asks b to dial a back, and once more if only the UDP
// probe timed out: three pings of 500 ms each can all miss on loopback
// under the whole suite on two cores (the same run's handshake took a
// second). Two asks stay within the burst of three.
func askReachingUDP(t *testing.T, a, b *testNode) DialBack {
	t.Helper()
	d, err := a.m.AskDialBack(context.Background(), b.m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !d.UDP.OK && d.UDP.Err == "timeout" && d.TCP.OK {
		t.Logf("UDP dial-back timed out on a loaded machine, asking again: %+v", d)
		if d, err = a.m.AskDialBack(context.Background(), b.m.ID()); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// A verified peer asked to dial back reaches every port of the asker,
// says where it dialled, and whether it heard the asker on mDNS; the
// clocks of one machine agree.
func TestDialBackReachesEveryPort(t *testing.T) {
	a, b := dialBackPair(t)
	d := askReachingUDP(t, a, b)
	if d.Refused != "" || !d.UDP.OK || !d.TCP.OK || !d.TLS.OK || d.Addr != netip.MustParseAddr("127.0.0.1") || d.Peer != b.m.ID() {
		t.Fatalf("dial-back %+v", d)
	}
	if off := d.Offset; off < -time.Second || off > time.Second || d.Uncertainty > time.Second {
		t.Fatalf("one machine's clock is off from itself by %v ±%v", off, d.Uncertainty)
	}
	if d.HeardMDNS {
		t.Fatalf("b says it heard a on mDNS, which it never did: %+v", d)
	}
	g, _ := a.m.Ports()
	b.m.doc.heard.saw(a.m.ID(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(g)), time.Now().Add(-3*time.Second))
	d, err := a.m.AskDialBack(context.Background(), b.m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if d.Refused == DialBackRateLimited {
		t.Fatalf("the third ask of a burst of three refused: %+v", d)
	}
	if !d.HeardMDNS || d.MDNSAgo < 3*time.Second || d.MDNSAgo > time.Minute {
		t.Fatalf("after b heard a on mDNS 3 s ago: %+v", d)
	}
}

// A port of the asker that does not answer is reported unreached, with
// why; the others still are reached.
func TestDialBackReportsPortsThatDoNotAnswer(t *testing.T) {
	a, b := dialBackPair(t)
	a.m.mu.Lock()
	ln := a.m.ln
	a.m.mu.Unlock()
	ln.Close() // the message port: nothing listens there any more
	d := askReachingUDP(t, a, b)
	if d.Refused != "" || !d.UDP.OK || !d.TCP.OK || d.TLS.OK || d.TLS.Err != "refused" {
		t.Fatalf("message port closed: %+v", d)
	}
}

// A stranger (a key the server has no member for) gets no dial at all.
func TestDialBackRefusesAStranger(t *testing.T) {
	b := startNode(t, t.TempDir(), "bob")
	d, err := NewDialer(testIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	r := rawDialBack(t, d, b, `{"v":1}`+"\n")
	if r == nil || r.Refused != DialBackUnknown || r.UDP != nil || r.TCP != nil || r.TLS != nil || r.Addr != "" {
		t.Fatalf("stranger's dial-back: %+v", r)
	}
}

// The server dials only the asking stream's own address: a request that
// names another address and port (fields the protocol does not have) is
// answered as if it named none, and nothing arrives at the address named.
func TestDialBackDialsOnlyTheAsker(t *testing.T) {
	a, b := dialBackPair(t)
	decoy, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	defer decoy.Close()
	arrived := make(chan struct{}, 8)
	go func() {
		for {
			c, err := decoy.Accept()
			if err != nil {
				return
			}
			arrived <- struct{}{}
			c.Close()
		}
	}()
	dport := decoy.Addr().(*net.TCPAddr).Port
	req := `{"v":1,"addr":"127.0.0.2","gossip_port":` + strconv.Itoa(dport) + `,"port":` + strconv.Itoa(dport) + "}\n"
	r := rawDialBack(t, a.m.dialer, b, req)
	if r == nil || r.Refused != "" || r.Addr != "127.0.0.1" || r.TLS == nil || !r.TLS.OK {
		t.Fatalf("reply %+v", r)
	}
	select {
	case <-arrived:
		t.Fatal("the server dialled the address the request named")
	case <-time.After(200 * time.Millisecond):
	}
}

// One source is served dialBackBurst times at once, then refused until
// its bucket refills.
func TestDialBackIsRateLimited(t *testing.T) {
	a, b := dialBackPair(t)
	// A clock that stands still: no refill, however slow the machine.
	frozen := time.Now()
	b.m.doc.once.Do(func() {
		b.m.doc.perAddr = ratelimit.New[netip.Addr](dialBackRate, dialBackBurst, maxBuckets, ratelimit.Refuse, func() time.Time { return frozen })
		b.m.doc.serving = make(chan struct{}, dialBackServing)
	})
	for i := range dialBackBurst {
		d, err := a.m.AskDialBack(context.Background(), b.m.ID())
		if err != nil || d.Refused != "" {
			t.Fatalf("ask %d: %+v, %v", i+1, d, err)
		}
	}
	d, err := a.m.AskDialBack(context.Background(), b.m.ID())
	if err != nil || d.Refused != DialBackRateLimited {
		t.Fatalf("ask past the burst: %+v, %v", d, err)
	}
}

// A request is read within dialBackIOTimeout and at most
// maxDialBackRequest bytes: a peer that sends endless bytes, or none, is
// cut off without a reply and without a dial.
func TestDialBackBoundsTheRequest(t *testing.T) {
	a, b := dialBackPair(t)
	t.Run("endless", func(t *testing.T) {
		s, err := a.m.dialer.DialAddr(context.Background(), b.tlsAddr(), b.m.ID(), ALPNDoctor)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(dialBackIOTimeout))
		go io.Copy(s, strings.NewReader(`{"v":1,"x":"`+strings.Repeat("a", 1<<20)))
		n, _ := io.Copy(io.Discard, s)
		if n != 0 {
			t.Fatalf("got %d bytes of reply to an endless request", n)
		}
	})
	t.Run("silent", func(t *testing.T) {
		s, err := a.m.dialer.DialAddr(context.Background(), b.tlsAddr(), b.m.ID(), ALPNDoctor)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		s.SetDeadline(start.Add(dialBackIOTimeout + 3*time.Second))
		n, err := io.Copy(io.Discard, s)
		if n != 0 || time.Since(start) > dialBackIOTimeout+2*time.Second {
			t.Fatalf("silent asker: %d bytes, closed after %v (%v)", n, time.Since(start), err)
		}
	})
}

// The offset is NTP's: a peer 10 s ahead, 100 ms each way, 1 s spent
// dialling, is 10 s ahead within 100 ms.
func TestDialBackClockOffset(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rx := t0.Add(10*time.Second + 100*time.Millisecond)
	tx := rx.Add(time.Second)
	t1 := t0.Add(1200 * time.Millisecond)
	ok := ProbeResult{OK: true, RTT: 1}
	d, err := dialBackOf("X", dialBackReply{V: 1, Rx: rx.UnixMicro(), Tx: tx.UnixMicro(), UDP: &ok, TCP: &ok, TLS: &ok, MDNSAgo: -1}, t0, t1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Offset != 10*time.Second || d.Uncertainty != 100*time.Millisecond || d.HeardMDNS {
		t.Fatalf("offset %v ± %v, heard %v", d.Offset, d.Uncertainty, d.HeardMDNS)
	}
	if _, err := dialBackOf("X", dialBackReply{V: 2}, t0, t1); err == nil {
		t.Fatal("a reply of another version was taken")
	}
	if _, err := dialBackOf("X", dialBackReply{V: 1, Rx: 1, Tx: 2, MDNSAgo: -1}, t0, t1); err == nil {
		t.Fatal("a reply without its probes was taken")
	}
}

// While dialBackServing dial-backs are being served, another is refused
// as busy, not queued.
func TestDialBackRefusesWhenBusy(t *testing.T) {
	a, b := dialBackPair(t)
	b.m.doc.init()
	for range dialBackServing {
		b.m.doc.serving <- struct{}{}
	}
	d, err := a.m.AskDialBack(context.Background(), b.m.ID())
	if err != nil || d.Refused != DialBackBusy {
		t.Fatalf("asked while busy: %+v, %v", d, err)
	}
	for range dialBackServing {
		<-b.m.doc.serving
	}
	if d, err := a.m.AskDialBack(context.Background(), b.m.ID()); err != nil || d.Refused != "" || !d.TLS.OK {
		t.Fatalf("asked once free: %+v, %v", d, err)
	}
}

// FuzzDialBack: whatever a peer writes as a dial-back request or reply
// is refused with an error or read within its bound, never a panic; a
// reply read is one of the shapes dialBackOf makes.
func FuzzDialBack(f *testing.F) {
	f.Add([]byte(`{"v":1}` + "\n"))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"addr":"10.0.0.1","rx":5,"tx":9,"udp":{"ok":true,"rtt_us":3},"tcp":{"ok":false,"err":"timeout"},"tls":{"ok":true},"mdns_ago_ms":1200}`))
	f.Add([]byte(`{"v":1,"refused":"rate","rx":1,"tx":1}`))
	f.Add([]byte(`{"v":1,"rx":9,"tx":5,"udp":null}`))
	f.Add([]byte(strings.Repeat(" ", maxDialBackReply+1) + `{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = readDialBackRequest(strings.NewReader(string(b)))
		d, err := readDialBackReply(strings.NewReader(string(b)), "PEER", time.Now())
		if err != nil {
			return
		}
		if d.Peer != "PEER" || d.Uncertainty < 0 {
			t.Fatalf("reply read as %+v", d)
		}
		if d.Refused == "" && d.MDNSAgo < 0 {
			t.Fatalf("negative mDNS age: %+v", d)
		}
	})
}
