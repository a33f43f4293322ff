package mesh

import (
	"context"
	"crypto/ed25519"
	"sync"

	"github.com/hashicorp/memberlist"
)

// memberlist cannot tell its users a goodbye from a failure: it records
// StateLeft internally but hands NotifyLeave a Node whose State field it
// never sets. So, as Serf does, a node that exits cleanly first says so in
// a message of its own, a leave intent, sent straight to every live member
// and gossiped on by whoever hears it. Intents name the run (id-nonce), so
// an intent can never apply to a later run of the same peer and no Lamport
// clock is needed to order them. Intents are signed by the run's key and
// checked against the key its metadata carried.

const (
	msgLeaveIntent = 0x01
	maxMemberName  = 128
	// intentContext starts what an intent's signature covers.
	intentContext = "lanchat leave v1\x00"
)

// encodeLeaveIntent is 0x01 | member name | Ed25519 signature of
// intentContext | member name, by the run's identity key: gossip is not
// authenticated, so anyone could otherwise say that a peer left.
func encodeLeaveIntent(member string, key ed25519.PrivateKey) []byte {
	b := append([]byte{msgLeaveIntent}, member...)
	return append(b, ed25519.Sign(key, intentSigned(member))...)
}

// decodeLeaveIntent reads an intent's form; the signature is checked by
// whoever knows the run's key (gate.leaving).
func decodeLeaveIntent(b []byte) (member string, sig []byte, ok bool) {
	if len(b) < 2+ed25519.SignatureSize || len(b) > 1+maxMemberName+ed25519.SignatureSize || b[0] != msgLeaveIntent {
		return "", nil, false
	}
	n := len(b) - ed25519.SignatureSize
	name := string(b[1:n])
	if _, ok := splitMember(name); !ok {
		return "", nil, false
	}
	return name, b[n:], true
}

func intentSigned(member string) []byte { return append([]byte(intentContext), member...) }

// leaveBroadcast is a signed leave intent queued for gossip.
type leaveBroadcast struct {
	member string
	msg    []byte
}

func (b leaveBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(leaveBroadcast)
	return ok && o.member == b.member
}
func (b leaveBroadcast) Message() []byte { return b.msg }
func (b leaveBroadcast) Finished()       {}

// sayGoodbye tells every live member that this run is leaving, then
// leaves memberlist, all within LeaveTimeout.
func (m *Mesh) sayGoodbye(ml *memberlist.Memberlist) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.LeaveTimeout/2)
	defer cancel()
	msg := encodeLeaveIntent(m.member, m.cfg.Identity.Key)
	m.bcast.QueueBroadcast(leaveBroadcast{member: m.member, msg: msg})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, n := range m.liveMembers() {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// UDP first: it is one packet and arrives at once; TCP as
			// well, for the packet that gets lost.
			ml.SendBestEffort(n, msg)
			ml.SendReliable(n, msg)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if err := ml.Leave(m.cfg.LeaveTimeout / 2); err != nil {
		m.log.Debug("leave", "err", err)
	}
}

// liveMembers are the runs the peer table counts alive, as nodes to send
// to. They are copies: the *memberlist.Node values Members returns are
// memberlist's own, which its packet handler rewrites (address, port)
// under a lock we cannot take, so reading them from here races.
func (m *Mesh) liveMembers() []*memberlist.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*memberlist.Node
	for _, e := range m.table.peers {
		if e.alive && e.Addr.IsValid() {
			out = append(out, &memberlist.Node{Name: e.member, Addr: e.Addr.AsSlice(), Port: e.GossipPort})
		}
	}
	return out
}
