package mesh

import (
	"context"
	"sync"

	"github.com/hashicorp/memberlist"
)

// memberlist cannot tell its users a goodbye from a failure: it records
// StateLeft internally but hands NotifyLeave a Node whose State field it
// never sets. So, as Serf does, a node that exits cleanly first says so in
// a message of its own, a leave intent, sent straight to every live member
// and gossiped on by whoever hears it. Intents name the run (id-nonce), so
// an intent can never apply to a later run of the same peer and no Lamport
// clock is needed to order them.

const (
	msgLeaveIntent = 0x01
	maxMemberName  = 128
)

func encodeLeaveIntent(member string) []byte {
	return append([]byte{msgLeaveIntent}, member...)
}

func decodeLeaveIntent(b []byte) (string, bool) {
	if len(b) < 2 || len(b) > 1+maxMemberName || b[0] != msgLeaveIntent {
		return "", false
	}
	name := string(b[1:])
	if _, ok := splitMember(name); !ok {
		return "", false
	}
	return name, true
}

type leaveBroadcast string

func (b leaveBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(leaveBroadcast)
	return ok && o == b
}
func (b leaveBroadcast) Message() []byte { return encodeLeaveIntent(string(b)) }
func (b leaveBroadcast) Finished()       {}

// sayGoodbye tells every live member that this run is leaving, then
// leaves memberlist, all within LeaveTimeout.
func (m *Mesh) sayGoodbye(ml *memberlist.Memberlist) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.LeaveTimeout/2)
	defer cancel()
	msg := encodeLeaveIntent(m.member)
	m.bcast.QueueBroadcast(leaveBroadcast(m.member))
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
