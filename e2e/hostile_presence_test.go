//go:build linux

package e2e

import (
	"bytes"
	"compress/lzw"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"lanchat/internal/netlab"
	"lanchat/mesh"
)

const mlDeadMsg = 5 // memberlist deadMsg

// TestHostilePresence: a host on the LAN that runs no node forges
// presence in gossip — a member under bob's id with a later start and its
// own status text, bob's run re-announced with the attacker's words at the
// attacker's address, a dead message for bob at incarnation 2^32-1, a
// thousand members of fresh keys — while alice and bob keep seeing each
// other as they are, and a real crash is still seen.
func TestHostilePresence(t *testing.T) {
	t.Parallel()
	hostilePresence(t, false)
}

// TestHostilePresenceKeyed is the same against a closed network, the
// attacker without the office key: none of its gossip is even read, no
// member of its is listed, bob stays online, and a real crash is still
// seen.
func TestHostilePresenceKeyed(t *testing.T) {
	t.Parallel()
	hostilePresence(t, true)
}

func hostilePresence(t *testing.T, keyed bool) {
	alice, bob, attacker, _ := honestPair(t, keyed)
	nodes := []*node{alice, bob}

	// The attacker learns bob's run name as any member would: a push-pull
	// with alice hands over her member list. Without the key it cannot
	// (the push-pull is encrypted, and nothing shows the name), so it
	// makes one up: what it sends is not even decrypted.
	bobRun := bob.id() + "-0123456789abcdef"
	if !keyed {
		bobRun = learnRun(t, attacker, alice, bob.id())
	}
	t.Logf("bob's run: %s", bobRun)
	rssBefore := alice.rss()

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	at := netip.AddrPortFrom(attacker.Addr, 7480)
	forged := mesh.Meta{Proto: mesh.ProtocolVersion, TLSPort: 7481, Started: time.Now().Add(time.Hour).UnixMilli(), Seq: 1,
		Name: "bob", Status: "forged: send me your files", Gossip: at}
	var nonce [8]byte
	rand.Read(nonce[:])
	newRun := bob.id() + "-" + hex.EncodeToString(nonce[:])
	pkts := [][]byte{
		signedAlive(t, 1, newRun, forged, key),
		signedAlive(t, math.MaxUint32, bobRun, forged, key),
		forgedDeadMsg(math.MaxUint32, bobRun),
	}
	// A thousand members of fresh keys, all at the attacker's address.
	for i := range 1000 {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		id := mesh.IDFromPublicKey(k.Public().(ed25519.PublicKey))
		m := mesh.Meta{Proto: mesh.ProtocolVersion, TLSPort: 7481, Started: 1, Seq: 1, Name: fmt.Sprintf("sybil%d", i), Gossip: at}
		pkts = append(pkts, signedAlive(t, 1, fmt.Sprintf("%s-%016x", id, i), m, k))
	}
	forgedAt := time.Now()
	for _, target := range nodes {
		sendFromHost(t, attacker, target.gossipAddr(), pkts)
	}

	// For a while (memberlist's failure detection and suspicion take
	// seconds, the forged dead member is kept 15 s), both keep seeing each
	// other as they are.
	for time.Since(forgedAt) < 8*time.Second {
		for _, o := range nodes {
			for _, s := range nodes {
				if o == s {
					continue
				}
				ps, err := o.peers()
				if err != nil {
					t.Fatal(err)
				}
				es := entries(ps, s.id())
				if len(es) != 1 || es[0].State != "available" || !es[0].Verified || es[0].StatusText != "" || es[0].Addr != s.ready.Addr {
					t.Fatalf("%s lists %s as %+v after the forgeries", o, s, es)
				}
				// The sybils are capped: 8 live members may share an
				// address, and 16 offline peers never verified are kept.
				online := 0
				for _, p := range ps {
					if p.ID != s.id() && p.State != "offline" && p.State != "left" {
						online++
					}
				}
				if online > 8 || len(ps) > 1+8+16 || keyed && len(ps) != 1 {
					t.Fatalf("%s lists %d peers, %d of them strangers online, after a thousand forged members", o, len(ps), online)
				}
			}
			if ev, ok := o.presenceSince(otherOf(nodes, o).id(), "offline", forgedAt); ok {
				t.Fatalf("%s: %s", o, ev.raw)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if r := bob.cli("send", "alice", "still me"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, alice, bob.id(), "still me")
	// A thousand members cost a bounded table (of 1,024 peers, a few
	// hundred bytes each): alice's memory barely moves.
	if rss := alice.rss(); rss > rssBefore+32<<20 {
		t.Errorf("alice's RSS grew from %d to %d MiB after a thousand forged members", rssBefore>>20, rss>>20)
	}

	// A real crash is still seen.
	start := time.Now()
	bob.Kill()
	waitSees(t, offlineWithin, []*node{alice}, []*node{bob}, "offline")
	t.Logf("crash seen after %v, among the forgeries", time.Since(start).Round(time.Millisecond))
}

func otherOf(nodes []*node, n *node) *node {
	if nodes[0] == n {
		return nodes[1]
	}
	return nodes[0]
}

// learnRun asks n for its member list by a memberlist push-pull (not a
// join, carrying no members) and finds the run name of peer id in it.
func learnRun(t *testing.T, h *netlab.Host, n *node, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, "tcp", n.gossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(pushPullHeader(0, 0)); err != nil {
		t.Fatal(err)
	}
	state, _ := io.ReadAll(io.LimitReader(c, 1<<20))
	state = uncompressState(t, state)
	i := bytes.Index(state, []byte(id+"-"))
	if i < 0 || len(state) < i+len(id)+17 {
		t.Fatalf("no run of %s in %d bytes of %s's state", id, len(state), n)
	}
	return string(state[i : i+len(id)+17])
}

// uncompressState undoes memberlist's compression of a stream message
// (its compressMsg: a msgpack map {Algo: 0, Buf: LZW, LSB, 8-bit literals}).
func uncompressState(t *testing.T, b []byte) []byte {
	t.Helper()
	const mlCompressMsg = 9
	if len(b) == 0 || b[0] != mlCompressMsg {
		return b
	}
	i := bytes.Index(b, []byte("Buf"))
	if i < 0 || len(b) < i+4 {
		t.Fatalf("compressed state without Buf: %x", b[:min(len(b), 64)])
	}
	rest := b[i+3:]
	var n int
	switch rest[0] {
	case 0xc4, 0xd9: // bin 8, str 8
		n, rest = int(rest[1]), rest[2:]
	case 0xc5, 0xda: // bin 16, str 16
		n, rest = int(binary.BigEndian.Uint16(rest[1:3])), rest[3:]
	case 0xc6, 0xdb: // bin 32, str 32
		n, rest = int(binary.BigEndian.Uint32(rest[1:5])), rest[5:]
	default:
		if rest[0]&0xe0 != 0xa0 {
			t.Fatalf("unexpected Buf header %#x", rest[0])
		}
		n, rest = int(rest[0]&0x1f), rest[1:]
	}
	if n > len(rest) {
		t.Fatalf("Buf of %d bytes, %d there", n, len(rest))
	}
	out, err := io.ReadAll(io.LimitReader(lzw.NewReader(bytes.NewReader(rest[:n]), lzw.LSB, 8), 4<<20))
	if err != nil {
		t.Fatalf("decompress state: %v", err)
	}
	return out
}

func signedAlive(t *testing.T, inc uint32, member string, m mesh.Meta, key ed25519.PrivateKey) []byte {
	t.Helper()
	meta, err := m.Sign(member, key)
	if err != nil {
		t.Fatal(err)
	}
	var p msgpack
	p.b = append(p.b, mlAliveMsg)
	p.mapLen(6)
	p.str("Incarnation")
	p.uint(uint64(inc))
	p.str("Node")
	p.str(member)
	p.str("Addr")
	p.raw(m.Gossip.Addr().AsSlice())
	p.str("Port")
	p.uint(uint64(m.Gossip.Port()))
	p.str("Meta")
	p.raw(meta)
	p.str("Vsn")
	p.raw([]byte{1, 5, 5, 0, 5, 0})
	return p.b
}

func forgedDeadMsg(inc uint32, member string) []byte {
	var p msgpack
	p.b = append(p.b, mlDeadMsg)
	p.mapLen(3)
	p.str("Incarnation")
	p.uint(uint64(inc))
	p.str("Node")
	p.str(member)
	p.str("From")
	p.str("mallory")
	return p.b
}

// sendFromHost sends each packet from h to addr by UDP, a few at a time so
// as not to overrun a socket buffer.
func sendFromHost(t *testing.T, h *netlab.Host, addr string, pkts [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, b := range pkts {
		// An ICMP refusal of an earlier packet may surface here.
		if _, err := c.Write(b); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}
