package mesh

import (
	"bytes"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/hashicorp/memberlist"
)

// The memberlist adapters below run under memberlist's locks: they copy
// what they are given, queue it and return, and never call memberlist.

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*eventDelegate)(nil)
	_ memberlist.AliveDelegate    = (*aliveDelegate)(nil)
	_ memberlist.MergeDelegate    = (*mergeDelegate)(nil)
	_ memberlist.ConflictDelegate = (*conflictDelegate)(nil)
)

type delegate struct{ m *Mesh }

func (d *delegate) NodeMeta(limit int) []byte {
	b := d.m.signedMeta()
	if len(b) > limit {
		// Sign keeps metadata under MaxMetaLen; this is the last guard
		// before memberlist's panic.
		return nil
	}
	return b
}

// NotifyMsg receives lanchat's own gossip messages (see intent.go).
func (d *delegate) NotifyMsg(b []byte) {
	if name, sig, ok := decodeLeaveIntent(b); ok {
		if d.m.gate.leaving(name, sig) {
			d.m.q.push(memberEvent{kind: evIntent, name: name, meta: bytes.Clone(b)})
		}
		return
	}
	d.m.log.Debug("ignoring unknown gossip message", "len", len(b))
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.bcast.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(join bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

type evKind uint8

const (
	evJoin evKind = iota
	evUpdate
	evLeave
	evIntent   // a node's word that it is leaving on purpose
	evVerified // a handshake proved a run's key (verify.go)
	evMeta     // the gate took newer signed metadata of a live run
	evForget   // the gate forgot a peer to make room (name is id-0…0)
	evChecked  // a handshake answered (ok) or not after gossip said a verified run died
	evReach    // this node reaches (ok) a live run or not, while gossip holds it alive (reach.go)
)

// memberEvent is a copy of what memberlist said about a node, or of what
// a handshake proved about one. Both go through one queue so that
// subscribers hear of them in the order the peer table took them in.
type memberEvent struct {
	kind evKind
	name string         // memberlist node name: the run
	addr netip.Addr     // gossip address
	port uint16         // gossip port
	meta []byte         // metadata; for evIntent the signed intent, to gossip on
	at   netip.AddrPort // evVerified, evChecked: the TLS address that answered with the key
	ok   bool           // evChecked: it answered; evReach: it is reachable from here
	// refused, evChecked: the failure is an answer, not a silence (the
	// port refused the connection, or another key answered).
	refused bool
	seen    int // evReach: how many other live members gossip vouches for it through
}

func copyNode(kind evKind, n *memberlist.Node) memberEvent {
	addr, _ := netip.AddrFromSlice(n.Addr)
	return memberEvent{
		kind: kind,
		name: n.Name,
		addr: addr.Unmap(),
		port: n.Port,
		meta: bytes.Clone(n.Meta),
	}
}

// eventDelegate tells the gate what memberlist holds (it is called under
// the same memberlist lock as the alive delegate) and queues the news.
type eventDelegate struct {
	q *eventQueue
	g *gate
}

func (d *eventDelegate) NotifyJoin(n *memberlist.Node) {
	d.g.joined(n)
	d.q.push(copyNode(evJoin, n))
}
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	d.g.died(n)
	d.q.push(copyNode(evLeave, n))
}
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { d.q.push(copyNode(evUpdate, n)) }

// aliveDelegate keeps out of the member list every node the gate refuses:
// forged, replayed, or past a cap (gate.go).
type aliveDelegate struct{ g *gate }

func (d *aliveDelegate) NotifyAlive(n *memberlist.Node) error { return d.g.admit(n) }

// mergeDelegate refuses a join's state that holds a forged member.
type mergeDelegate struct{ g *gate }

func (d *mergeDelegate) NotifyMerge(peers []*memberlist.Node) error { return d.g.checkMerge(peers) }

type conflictDelegate struct{ log *slog.Logger }

func (d *conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	d.log.Warn("two nodes claim one run's name; keeping the first", "name", existing.Name, "existing", existing.Address(), "other", other.Address())
}

// eventQueue is an unbounded FIFO: memberlist's callbacks must never block,
// and dropping a membership change would leave the peer table wrong.
type eventQueue struct {
	mu     sync.Mutex // guards items and closed
	items  []memberEvent
	closed bool
	ready  chan struct{} // signalled (non-blocking) when items grows
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

func (q *eventQueue) push(ev memberEvent) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, ev)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop blocks until an event is there or the queue is closed.
func (q *eventQueue) pop() (memberEvent, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return memberEvent{}, false
		}
		if len(q.items) > 0 {
			ev := q.items[0]
			q.items[0] = memberEvent{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return ev, true
		}
		q.mu.Unlock()
		<-q.ready
	}
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records. Its errors are mostly refusals of bad input from the network,
// which is worth saying; the rest is debug chatter.
//
// It also tells refuted of memberlist's refutations, which it reports
// nowhere else (see hold.go).
type logWriter struct {
	log     *slog.Logger
	refuted func() // must not block: it runs under memberlist's lock
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if w.refuted != nil && bytes.Contains(p, []byte("memberlist: Refuting a")) {
		w.refuted()
	}
	level := slog.LevelDebug
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[ERR]", slog.LevelWarn}, {"[WARN]", slog.LevelDebug}, {"[INFO]", slog.LevelDebug}, {"[DEBUG]", slog.LevelDebug}} {
		if i := bytes.Index(p, []byte(l.tag)); i >= 0 {
			level = l.level
			line = string(bytes.TrimSpace(p[i+len(l.tag):]))
			break
		}
	}
	w.log.Log(nil, level, line)
	return len(p), nil
}
