//go:build linux

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// What the hostile cases speak, from PROTOCOL.md and memberlist's wire
// format (hashicorp/memberlist net.go).
const (
	alpnMessages = "lanchat/msg/1" // message streams
	frameMsg     = 0x01            // a message frame: 'L' 'M' type length(4)

	mlAliveMsg    = 4  // memberlist aliveMsg
	mlPushPullMsg = 6  // memberlist pushPullMsg (stream)
	mlCompoundMsg = 7  // memberlist compoundMsg (packet)
	mlUserMsg     = 8  // memberlist userMsg: handed to lanchat's delegate
	mlEncryptMsg  = 10 // memberlist encryptMsg (stream): a 4-byte length follows
	mlHasCrcMsg   = 12 // memberlist hasCrcMsg (packet)

	// closeWithin bounds how long the node may keep a silent connection
	// open before its handshake or read deadline closes it.
	closeWithin = 30 * time.Second
)

// hostileCase is one kind of garbage thrown at a node's port.
type hostileCase struct {
	name    string
	port    string // "tls" or "gossip"
	network string // "tcp" or "udp"
	// send writes the garbage. It may return the connection to hold open
	// until the end of the test (a half-open connection); nil closes it.
	send func(t testing.TB, c net.Conn) (hold bool, err error)
	// mustClose: the node must close this held connection by itself
	// within closeWithin.
	mustClose bool
}

// hostileCases are the garbage; attacker is the address it comes from.
func hostileCases(attacker netip.Addr) []hostileCase {
	return []hostileCase{
		// The TLS port, before the handshake.
		{name: "tls random bytes", port: "tls", network: "tcp", send: writeThen(randomBytes(4096), false)},
		{name: "tls record with oversized length", port: "tls", network: "tcp",
			send: writeThen(append([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, randomBytes(100)...), true)},
		{name: "tls half-open, silent", port: "tls", network: "tcp", send: writeThen(nil, true), mustClose: true},
		{name: "tls half-open, partial client hello", port: "tls", network: "tcp",
			send: writeThen([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, true), mustClose: true},
		{name: "tls half-closed after junk", port: "tls", network: "tcp", send: func(t testing.TB, c net.Conn) (bool, error) {
			if _, err := c.Write(randomBytes(64)); err != nil {
				return false, err
			}
			return true, c.(*net.TCPConn).CloseWrite()
		}},

		// A message stream, after a handshake with a stranger's valid key.
		{name: "message stream, oversized frame length", port: "tls", network: "tcp",
			send: afterHandshake([]byte{'L', 'M', frameMsg, 0xff, 0xff, 0xff, 0xff})},
		{name: "message stream, random bytes", port: "tls", network: "tcp", send: afterHandshake(randomBytes(2048))},
		{name: "message stream, silent", port: "tls", network: "tcp", send: afterHandshake(nil)},

		// The gossip port, stream side.
		{name: "gossip tcp random bytes", port: "gossip", network: "tcp", send: writeThen(randomBytes(4096), false)},
		{name: "gossip tcp oversized encrypted length", port: "gossip", network: "tcp",
			send: writeThen([]byte{mlEncryptMsg, 0xff, 0xff, 0xff, 0xff}, true)},
		{name: "gossip tcp push-pull claiming a million nodes", port: "gossip", network: "tcp",
			send: writeThen(pushPullHeader(1<<20, 0), true)},
		{name: "gossip tcp push-pull with junk user state", port: "gossip", network: "tcp",
			send: writeThen(append(pushPullHeader(0, 300), randomBytes(300)...), false)},
		{name: "gossip tcp half-open, silent", port: "gossip", network: "tcp", send: writeThen(nil, true), mustClose: true},

		// The gossip port, packet side.
		{name: "gossip udp random datagrams", port: "gossip", network: "udp", send: func(t testing.TB, c net.Conn) (bool, error) {
			for i := range 20 {
				if _, err := c.Write(randomBytes(1 + i*70)); err != nil {
					return false, err
				}
			}
			return false, nil
		}},
		{name: "gossip udp compound with oversized lengths", port: "gossip", network: "udp",
			send: writeThen(compoundOversized(), false)},
		{name: "gossip udp bad crc", port: "gossip", network: "udp",
			send: writeThen(append([]byte{mlHasCrcMsg, 1, 2, 3, 4}, randomBytes(200)...), false)},
		{name: "gossip udp junk user message", port: "gossip", network: "udp",
			send: writeThen(append([]byte{mlUserMsg}, randomBytes(400)...), false)},
		{name: "gossip udp member with junk metadata", port: "gossip", network: "udp",
			send: writeThen(aliveJunkMeta(attacker), false)},
	}
}

// TestHostileInput throws garbage at a node's TLS and gossip ports, holding
// half-open connections, and checks that the node keeps running, keeps
// answering and still delivers messages both ways.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts[:2], "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	attacker := lab.Hosts[2] // runs no node
	waitSees(t, seeTimeout, nodes, nodes, "available")

	var held []heldConn
	t.Cleanup(func() {
		for _, h := range held {
			h.c.Close()
		}
	})
	for _, tc := range hostileCases(attacker.Addr) {
		port := alice.ready.Port
		if tc.port == "gossip" {
			port = alice.ready.GossipPort
		}
		addr := net.JoinHostPort(alice.ready.Addr, strconv.Itoa(port))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := attacker.Dial(ctx, tc.network, addr)
		cancel()
		if err != nil {
			t.Fatalf("%s: dial %s %s: %v", tc.name, tc.network, addr, err)
		}
		hold, err := tc.send(t, c)
		if err != nil {
			// The node may hang up mid-garbage: that is fine.
			t.Logf("%s: %v", tc.name, err)
		}
		if hold {
			held = append(held, heldConn{tc.name, c, tc.mustClose})
		} else {
			c.Close()
		}
		// After each case: still running, still answering.
		if alice.exited() {
			t.Fatalf("alice exited after %q: %v", tc.name, alice.exitState())
		}
		r := alice.cli("id", "--json")
		var got peerRef
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.ID != alice.id() {
			t.Fatalf("alice after %q: %v", tc.name, r)
		}
	}

	// With the half-open connections still held: messages both ways.
	if r := bob.cli("send", "alice", "after the storm"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, alice, bob.id(), "after the storm")
	if r := alice.cli("send", "bob", "still here"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, bob, alice.id(), "still here")
	if err := seesState([]*node{alice, bob}, nodes, "available"); err != nil {
		t.Error(err)
	}

	// Silent connections do not stay open forever.
	for _, h := range held {
		if !h.mustClose {
			continue
		}
		if err := waitClosed(h.c, closeWithin); err != nil {
			t.Errorf("%s: %v", h.name, err)
		}
	}
	if alice.exited() {
		t.Fatalf("alice exited: %v", alice.exitState())
	}
}

// heldConn is a connection kept open to the end of the test.
type heldConn struct {
	name      string
	c         net.Conn
	mustClose bool
}

// waitClosed waits until the peer closes c (or resets it).
func waitClosed(c net.Conn, within time.Duration) error {
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		return err
	}
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			continue // an alert or an error reply: keep reading
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("node kept a silent connection open for %v", within)
		default:
			return nil // EOF or reset: closed
		}
	}
}

// writeThen returns a send that writes b and then holds the connection or
// not.
func writeThen(b []byte, hold bool) func(testing.TB, net.Conn) (bool, error) {
	return func(_ testing.TB, c net.Conn) (bool, error) {
		if len(b) > 0 {
			if _, err := c.Write(b); err != nil {
				return hold, err
			}
		}
		return hold, nil
	}
}

// afterHandshake returns a send that completes a TLS 1.3 handshake as a
// stranger with a valid self-signed Ed25519 key, agrees on the message
// protocol, writes b inside the stream, and holds it open.
func afterHandshake(b []byte) func(testing.TB, net.Conn) (bool, error) {
	return func(t testing.TB, c net.Conn) (bool, error) {
		cert, err := strangerCert()
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(c, &tls.Config{
			MinVersion:         tls.VersionTLS13,
			Certificates:       []tls.Certificate{cert},
			NextProtos:         []string{alpnMessages},
			InsecureSkipVerify: true, // the stranger does not care who answers
			ServerName:         "lanchat",
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return false, fmt.Errorf("handshake (refusing a stranger is allowed): %w", err)
		}
		if len(b) > 0 {
			if _, err := tc.Write(b); err != nil {
				return true, err
			}
		}
		return true, nil
	}
}

// strangerCert makes a self-signed certificate for a fresh Ed25519 key: an
// identity the node has never seen.
func strangerCert() (tls.Certificate, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stranger"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// pushPullHeader is a memberlist push-pull stream start: the message type
// and a msgpack header {Nodes, UserStateLen, Join}.
func pushPullHeader(nodes, userStateLen int) []byte {
	var m msgpack
	m.b = append(m.b, mlPushPullMsg)
	m.mapLen(3)
	m.str("Nodes")
	m.uint(uint64(nodes))
	m.str("UserStateLen")
	m.uint(uint64(userStateLen))
	m.str("Join")
	m.bool(false)
	return m.b
}

// compoundOversized is a compound packet announcing 255 parts of 65535
// bytes each, with almost nothing behind them.
func compoundOversized() []byte {
	b := []byte{mlCompoundMsg, 255}
	for range 255 {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	}
	return append(b, randomBytes(16)...)
}

// aliveJunkMeta announces a member with random metadata, which reaches
// lanchat's delegate as that member's node meta. Its address is the
// attacker's own host in the lab, on a port nobody listens on.
func aliveJunkMeta(at netip.Addr) []byte {
	var m msgpack
	m.b = append(m.b, mlAliveMsg)
	m.mapLen(6)
	m.str("Incarnation")
	m.uint(1)
	m.str("Node")
	m.str("hostile-junk-member")
	m.str("Addr")
	m.raw(at.AsSlice())
	m.str("Port")
	m.uint(9)
	m.str("Meta")
	m.raw(randomBytes(200))
	m.str("Vsn")
	m.raw([]byte{1, 5, 2, 0, 5, 0}) // protocol min, max, cur; delegate min, max, cur
	return m.b
}

// msgpack is the little of the msgpack encoding memberlist's messages need
// (its codec reads []byte from msgpack str).
type msgpack struct{ b []byte }

func (m *msgpack) mapLen(n int) { m.b = append(m.b, 0x80|byte(n)) }

func (m *msgpack) str(s string) { m.raw([]byte(s)) }

func (m *msgpack) raw(p []byte) {
	switch n := len(p); {
	case n < 32:
		m.b = append(m.b, 0xa0|byte(n))
	case n < 256:
		m.b = append(m.b, 0xd9, byte(n))
	default:
		m.b = append(m.b, 0xda)
		m.b = binary.BigEndian.AppendUint16(m.b, uint16(n))
	}
	m.b = append(m.b, p...)
}

func (m *msgpack) uint(v uint64) {
	if v < 128 {
		m.b = append(m.b, byte(v))
		return
	}
	m.b = append(m.b, 0xcf)
	m.b = binary.BigEndian.AppendUint64(m.b, v)
}

func (m *msgpack) bool(v bool) {
	if v {
		m.b = append(m.b, 0xc3)
	} else {
		m.b = append(m.b, 0xc2)
	}
}
