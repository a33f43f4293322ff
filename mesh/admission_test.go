package mesh

import (
	"context"
	"crypto/tls"
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
