package mesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// One host holding hundreds of idle connections to the TLS port cannot
// keep another from being served: it gets maxPerSource of them, and a
// peer at another address still completes its handshake at once.
func TestConnectionFloodFromOneHostLeavesOthersServed(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	_, tp := a.m.Ports()
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp)).String()
	from := func(ip string) *net.Dialer {
		return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	}
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	for range 300 {
		c, err := from("127.0.0.3").Dial("tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	// The server closes what is over the limit: count the survivors.
	time.Sleep(300 * time.Millisecond)
	alive := 0
	for _, c := range flood {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				alive++ // still open, waiting for our ClientHello
			}
		}
	}
	if alive > maxPerSource {
		t.Errorf("%d idle connections from one address held open, limit %d", alive, maxPerSource)
	}
	// An honest peer at another address is served at once.
	other, _ := LoadOrCreateIdentity(t.TempDir())
	cert, err := selfSignedCert(other)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := from("127.0.0.2").Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(raw, clientTLSConfig(cert, ALPNPing, a.m.ID()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("an honest handshake during the flood: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("an honest handshake took %v during the flood", d)
	}
}

func TestAdmissionRandomEarlyDrop(t *testing.T) {
	a := newAdmission()
	admitted := 0
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if a.admit(src) == "" {
			admitted++
		}
	}
	if admitted < startupsEarly || admitted > startupsFull {
		t.Fatalf("%d handshakes admitted at once, want between %d and %d", admitted, startupsEarly, startupsFull)
	}
	for range admitted {
		a.handshaken()
	}
	if why := a.admit(netip.MustParseAddr("10.9.9.9")); why != "" {
		t.Fatalf("after the handshakes ended: refused (%s)", why)
	}
}

// Directory requests nobody reads cost the server little and stop at a
// few per address: an honest one-shot at another address is answered at
// once, in full.
func TestUnreadDirectoryStreamsDoNotStarveOthers(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	_, tp := a.m.Ports()
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp)).String()
	other, _ := LoadOrCreateIdentity(t.TempDir())
	cert, err := selfSignedCert(other)
	if err != nil {
		t.Fatal(err)
	}
	open := func(ip string) (*tls.Conn, error) {
		raw, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}).Dial("tcp", target)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, clientTLSConfig(cert, ALPNDirectory, a.m.ID()))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return tc, nil
	}
	var unread []*tls.Conn
	t.Cleanup(func() {
		for _, c := range unread {
			c.Close()
		}
	})
	for range 40 {
		c, err := open("127.0.0.3")
		if err != nil {
			t.Fatal(err)
		}
		unread = append(unread, c) // never read
	}
	start := time.Now()
	c, err := open("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	list, err := decodeDirectory(c, a.m.ID())
	if err != nil || len(list) != 1 || list[0].Name != "alice" {
		t.Fatalf("an honest directory request during the flood: %v, %v", list, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("answered after %v", d)
	}
	a.m.dirs.mu.Lock()
	held := a.m.dirs.by[netip.MustParseAddr("127.0.0.3")]
	a.m.dirs.mu.Unlock()
	if held > dirPerSource {
		t.Errorf("%d directory replies held for one address, limit %d", held, dirPerSource)
	}
}

func TestDirGateLimits(t *testing.T) {
	var g dirGate
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for range dirPerSource {
		if !g.enter(a) {
			t.Fatal("refused under the per-address limit")
		}
	}
	if g.enter(a) {
		t.Fatal("a third reply to one address")
	}
	if !g.enter(b) {
		t.Fatal("another address refused")
	}
	g.leave(a)
	if !g.enter(a) {
		t.Fatal("refused after one ended")
	}
	n := 0
	for i := range 100 {
		if g.enter(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})) {
			n++
		}
	}
	if g.total != dirServed || n != dirServed-dirPerSource-1 {
		t.Fatalf("%d served in all (%d more admitted), want %d", g.total, n, dirServed)
	}
}

// One key opening streams from many addresses, each under the per-address
// limit, is served maxPerKey of them and no more; another key, from the
// same addresses, is still served, and the first is served again once
// some of its streams end.
func TestOneKeyCannotHoldEveryStream(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	const proto = "lanchat/test-hold/1"
	served := make(chan string, 4*maxPerKey)
	a.m.Handle(proto, func(s *Stream) {
		served <- s.PeerID()
		var b [1]byte
		s.Read(b[:]) // held until the client closes it
	})
	_, tp := a.m.Ports()
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp)).String()
	newCert := func() tls.Certificate {
		id, err := LoadOrCreateIdentity(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := selfSignedCert(id)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	open := func(cert tls.Certificate, ip string) net.Conn {
		t.Helper()
		raw, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}).Dial("tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(raw, clientTLSConfig(cert, proto, a.m.ID()))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			t.Fatal(err)
		}
		conns = append(conns, tc)
		return tc
	}
	// count takes what the handler saw until it has been quiet a while.
	count := func() map[string]int {
		n := map[string]int{}
		for {
			select {
			case p := <-served:
				n[p]++
			case <-time.After(500 * time.Millisecond):
				return n
			}
		}
	}
	mallory := newCert()
	var mine []net.Conn
	for i := range 2 * maxPerKey {
		// Spread over addresses, each well under maxPerSource.
		mine = append(mine, open(mallory, fmt.Sprintf("127.0.0.%d", 10+i%8)))
	}
	malloryID, _ := peerIDOf([][]byte{mallory.Certificate[0]})
	if n := count(); n[malloryID] != maxPerKey || len(n) != 1 {
		t.Fatalf("one key from 8 addresses: %v streams served, want %d", n, maxPerKey)
	}
	honest := newCert()
	honestID, _ := peerIDOf([][]byte{honest.Certificate[0]})
	open(honest, "127.0.0.10")
	if n := count(); n[honestID] != 1 {
		t.Fatalf("another key from a flooding address while one key is at its cap: served %v", n)
	}
	// The streams refused were closed by alice; ten served ones end now.
	closed := 0
	for _, c := range mine {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && closed < 10 {
				c.Close()
				closed++
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // the handlers see the closes
	for range 10 {
		open(mallory, "127.0.0.11")
	}
	if n := count(); n[malloryID] != 10 {
		t.Fatalf("after 10 of its streams ended, the key was served %d of 10 more", n[malloryID])
	}
}
