//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
	"lanchat/mesh"
	"lanchat/message"
)

// stranger is a fresh key on an attacker's host that writes to nodes over
// the real message protocol, as any LAN host may: it needs no node of its
// own, only the project's dialer and envelope code.
type stranger struct {
	id   *mesh.Identity
	d    *mesh.Dialer
	name string
	host *netlab.Host
}

func newStranger(t testing.TB, h *netlab.Host, name string) *stranger {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := &mesh.Identity{Key: key, ID: mesh.IDFromPublicKey(key.Public().(ed25519.PublicKey))}
	d, err := mesh.NewDialer(id)
	if err != nil {
		t.Fatal(err)
	}
	return &stranger{id: id, d: d, name: name, host: h}
}

// strangerConn is one message stream a stranger opened to a node.
type strangerConn struct {
	s  *stranger
	to *node
	st *mesh.Stream
	br *bufio.Reader
}

// dial opens a message stream from the stranger's host to n, proving n's
// id: the socket is made in the host's namespace.
func (s *stranger) dial(n *node) (*strangerConn, error) {
	var st *mesh.Stream
	err := s.host.Do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		st, err = s.d.DialAddr(ctx, n.ready.Addr+":"+strconv.Itoa(n.ready.Port), n.id(), message.ALPN)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &strangerConn{s: s, to: n, st: st, br: bufio.NewReader(st)}, nil
}

// seal makes a direct message from the stranger to the connection's node,
// stamped at.
func (c *strangerConn) seal(text string, at time.Time) ([]byte, error) {
	env := &message.Envelope{AuthorName: c.s.name, To: c.to.id(), Kind: message.KindText, Body: text,
		Time: message.Timestamp{Wall: at.UnixNano()}}
	return message.Seal(env, c.s.id.Key)
}

// write sends sealed envelopes without waiting for their ACKs.
func (c *strangerConn) write(sealed ...[]byte) error {
	var buf []byte
	for _, b := range sealed {
		buf = message.AppendFrame(buf, message.FrameMsg, b)
	}
	c.st.SetWriteDeadline(time.Now().Add(20 * time.Second))
	_, err := c.st.Write(buf)
	return err
}

// readAck reads the next ACK.
func (c *strangerConn) readAck() (message.Ack, error) {
	c.st.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		f, err := message.ReadFrame(c.br)
		if err != nil {
			return message.Ack{}, err
		}
		switch f.Type {
		case message.FrameAck:
			return message.ParseAck(f.Payload)
		case message.FrameClose:
			return message.Ack{}, fmt.Errorf("%s closed the stream: %q", c.to, f.Payload)
		}
	}
}

// send writes one message stamped at and waits for its ACK.
func (c *strangerConn) send(text string, at time.Time) (message.Ack, error) {
	b, err := c.seal(text, at)
	if err != nil {
		return message.Ack{}, err
	}
	if err := c.write(b); err != nil {
		return message.Ack{}, err
	}
	return c.readAck()
}

func (c *strangerConn) Close() error { return c.st.Close() }

// sendOnce opens a stream, sends one message and closes it.
func (s *stranger) sendOnce(n *node, text string, at time.Time) (message.Ack, error) {
	c, err := s.dial(n)
	if err != nil {
		return message.Ack{}, err
	}
	defer c.Close()
	return c.send(text, at)
}

// rss is the resident memory of the node's process, from /proc, in bytes.
func (n *node) rss() int64 {
	n.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		n.t.Fatalf("%s: %v", n, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" {
				n.t.Fatalf("%s: VmRSS line %q", n, line)
			}
			return kb << 10
		}
	}
	n.t.Fatalf("%s: no VmRSS in /proc status", n)
	return 0
}

// chatter keeps two nodes writing to each other, one message every
// period each way, until stop is called; stop returns each message's
// round trip (send until seen) and the first failure.
func chatter(t *testing.T, a, b *node, period time.Duration) (stop func() (worst time.Duration, sent int, err error)) {
	t.Helper()
	done := make(chan struct{})
	type result struct {
		worst time.Duration
		sent  int
		err   error
	}
	res := make(chan result, 1)
	bin := lanchatBin(t)
	go func() {
		var r result
		defer func() { res <- r }()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(period):
			}
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			text := fmt.Sprintf("chatter %d from %s", i, from.name)
			start := time.Now()
			cr, err := tryCLI(from.host, bin, "", "--data-dir", from.dataDir, "send", "--timeout", "20s", to.name, text)
			if err == nil && cr.code != 0 {
				err = fmt.Errorf("%v", cr)
			}
			if err != nil {
				r.err = err
				return
			}
			for {
				if hasMessage(to, from.id(), text) {
					break
				}
				if time.Since(start) > seeTimeout {
					r.err = fmt.Errorf("%s did not get %q from %s within %v", to, text, from, seeTimeout)
					return
				}
				time.Sleep(pollEvery)
			}
			r.worst = max(r.worst, time.Since(start))
			r.sent++
		}
	}()
	return func() (time.Duration, int, error) {
		close(done)
		r := <-res
		return r.worst, r.sent, r.err
	}
}

// hasMessage reports whether n received text from the peer id.
func hasMessage(n *node, from, text string) bool {
	for _, m := range n.received() {
		if m.From.ID == from && strings.TrimSpace(m.Text) == text {
			return true
		}
	}
	return false
}

// neverOffline returns nil if o printed no offline (or left) presence
// event about any of subjects at or after since.
func neverOffline(o *node, subjects []*node, since time.Time) error {
	for _, s := range subjects {
		if s == o {
			continue
		}
		for _, st := range []string{"offline", "left"} {
			if ev, ok := o.presenceSince(s.id(), st, since); ok {
				return fmt.Errorf("%s showed %s %s while it was up: %s", o, s, st, ev.raw)
			}
		}
	}
	return nil
}

// fds is how many file descriptors the node's process has open.
func (n *node) fds() int {
	n.t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", n.cmd.Process.Pid))
	if err != nil {
		n.t.Fatalf("%s: %v", n, err)
	}
	return len(es)
}

// keyArgs is what a node of a keyed lab is started with: an office key
// written on h (every host of a lab shares one file system), or nothing
// for an open network.
func keyArgs(t *testing.T, h *netlab.Host, keyed bool) []string {
	if !keyed {
		return nil
	}
	return []string{"--network-key-file", keyFile(t, h)}
}

// honestPair starts alice and bob on a lab of three, keyed or open, and
// waits until each lists the other available; the third host is the
// attacker's, running no node. args are the nodes' key flags, for
// one-shot commands of the same network.
func honestPair(t *testing.T, keyed bool) (alice, bob *node, attacker *netlab.Host, args []string) {
	lab := netlab.New(t, 3)
	args = keyArgs(t, lab.Hosts[0], keyed)
	alice = startNode(t, lab.Hosts[0], nodeOpts{name: "alice", args: args})
	bob = startNode(t, lab.Hosts[1], nodeOpts{name: "bob", args: args})
	nodes := []*node{alice, bob}
	waitSees(t, seeTimeout, nodes, nodes, "available")
	for _, o := range nodes {
		waitFor(t, seeTimeout, func() error { return listsState(o, nodes, "available", true) })
	}
	return alice, bob, lab.Hosts[2], args
}
