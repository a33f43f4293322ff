package mesh

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// swallower listens on loopback and, for the first n connections, reads
// and answers nothing (as a link that lost the SYN's answer does); later
// ones it forwards to target.
func swallower(t *testing.T, n int, target string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			if i < n {
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			held = append(held, up)
			mu.Unlock()
			wg.Go(func() { io.Copy(up, c); up.Close() })
			wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestAskSurvivesLostHandshakes: under packet loss a handshake can hang
// past its time (TestLossyPresenceNeverOffline once showed a live peer
// lost after one such check). A check whose first two connections are
// never answered once up still finds the peer, by its third; one to a
// closed port
// is refused at once; one to a port that never answers gives up after
// askWindow.
func TestAskSurvivesLostHandshakes(t *testing.T) {
	a := startNode(t, t.TempDir(), "alice")
	b := startNode(t, t.TempDir(), "bob")
	_, tp := b.m.Ports()
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(tp))
	ctx := context.Background()

	start := time.Now()
	if ok, refused := a.m.ask(ctx, swallower(t, 2, target.String()), b.m.ID()); !ok || refused {
		t.Fatalf("the first two handshakes swallowed: ok %v, refused %v, want found", ok, refused)
	}
	if d := time.Since(start); d > askWindow {
		t.Errorf("found after %v", d)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	start = time.Now()
	if ok, refused := a.m.ask(ctx, closed, b.m.ID()); ok || !refused {
		t.Fatalf("a closed port: ok %v, refused %v, want refused", ok, refused)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a closed port took %v to refuse", d)
	}

	start = time.Now()
	if ok, refused := a.m.ask(ctx, swallower(t, 1000, target.String()), b.m.ID()); ok || refused {
		t.Fatalf("nobody answers: ok %v, refused %v, want neither", ok, refused)
	}
	if d := time.Since(start); d < askWindow-100*time.Millisecond || d > askWindow+time.Second {
		t.Errorf("gave up after %v, want about %v", d, askWindow)
	}

	// Another key at the address is an answer: no retry changes it.
	if ok, refused := a.m.ask(ctx, target, a.m.ID()); ok || !refused {
		t.Fatalf("another key answers: ok %v, refused %v, want refused", ok, refused)
	}
}
