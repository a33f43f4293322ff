package mesh

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// gate decides which members memberlist may take in. Gossip without a
// network key is not authenticated: anyone on the LAN can send memberlist
// an alive message naming any member, any address and any metadata. The
// gate is consulted by memberlist's alive delegate for every such message
// (before memberlist looks at incarnations) and refuses, so that memberlist
// neither lists, probes nor gossips on:
//
//   - metadata not signed by the key of the id the member name claims, or
//     not naming the address the message gives (a forged member);
//   - our own id under another run;
//   - a signed metadata of a run older than one already seen (Seq), an
//     older run of a peer while a newer one lives or was seen lately
//     (Started), and any run that said goodbye (replays);
//   - new members past the caps: unverified live runs (maxUnverified),
//     live runs at one IP address (maxPerAddr), live runs of one id (2: a
//     restart while the old run is dying), and peers known (maxPeers; an
//     offline peer never verified makes room first).
//
// It tracks what memberlist holds from the event delegate's callbacks,
// which memberlist makes under the same lock as the alive delegate's, so
// its counts are memberlist's. Its own mutex is never held while calling
// anything else.
type gate struct {
	self   string // our member name
	selfID string
	lim    gateLimits
	q      *eventQueue // where newer metadata and forgotten peers are told
	now    func() time.Time

	mu         sync.Mutex // guards the fields below
	runs       map[string]*gateRun
	ids        map[string]*gateID
	perAddr    map[netip.Addr]int // live runs by gossip IP
	unverified int                // live runs not verified
	refusedCap bool               // a member was refused for a cap since the last takeRefused

	refusedWake chan struct{} // buffered 1: refusedCap was set (holdLoop pulls the membership again)
}

// gateLimits are the caps (Config.MaxPeers and friends).
type gateLimits struct {
	maxPeers      int
	maxUnverified int
	maxPerAddr    int
}

// gateRun is one run memberlist holds or held.
type gateRun struct {
	id       string
	key      [ed25519.PublicKeySize]byte
	seq      uint32
	started  int64
	meta     []byte // the last metadata taken, so that a repeat costs no signature check
	addr     netip.AddrPort
	live     bool // memberlist counts it alive (NotifyJoin, NotifyLeave)
	verified bool // a handshake proved its key
	left     bool // its signed goodbye was heard
	diedAt   time.Time
}

// gateID is what is remembered of a peer beyond its runs.
type gateID struct {
	newest   string // member name of its newest run
	started  int64  // that run's start
	seq      uint32 // that run's highest Seq taken
	left     bool   // that run said goodbye
	liveRuns int
	verified bool      // some run of it was verified
	seenAt   time.Time // last news of it
}

// maxRunsPerID: a restarted peer's new run while the old one is dying.
const maxRunsPerID = 2

// runMemory is how long an older run is refused after a newer one of the
// same peer was last heard of. Start times are wall clocks: a peer whose
// clock went back between two runs is taken again after this long.
const runMemory = 10 * time.Minute

// deadRunMemory is how long a dead run's record is kept (for its Seq and
// key) before it may be pruned; longer than memberlist keeps dead members
// (GossipToTheDeadTime), after which a replay would look new to it.
const deadRunMemory = 2 * time.Minute

var (
	errGateCap    = errors.New("cap reached")
	errGateReplay = errors.New("replayed metadata")
)

func newGate(self, selfID string, lim gateLimits, q *eventQueue) *gate {
	return &gate{
		self: self, selfID: selfID, lim: lim, q: q, now: time.Now,
		runs: make(map[string]*gateRun), ids: make(map[string]*gateID),
		perAddr: make(map[netip.Addr]int), refusedWake: make(chan struct{}, 1),
	}
}

// admit is the alive delegate's check of one alive message.
func (g *gate) admit(n *memberlist.Node) error {
	if n.Name == g.self {
		return nil // memberlist refutes what is not ours
	}
	id, ok := splitMember(n.Name)
	if !ok {
		return fmt.Errorf("not a lanchat node name: %q", n.Name)
	}
	if id == g.selfID {
		return errors.New("claims this node's id")
	}
	addr, _ := netip.AddrFromSlice(n.Addr)
	at := netip.AddrPortFrom(addr.Unmap(), n.Port)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	r := g.runs[n.Name]
	gid := g.ids[id]
	if r != nil && r.left || r == nil && gid != nil && gid.newest == n.Name && gid.left {
		return fmt.Errorf("%w: run said goodbye", errGateReplay)
	}
	var meta Meta
	if r != nil && r.addr == at && bytes.Equal(r.meta, n.Meta) {
		meta.Seq = r.seq // a repeat of what was taken
	} else {
		var err error
		if meta, err = VerifyMeta(n.Name, n.Meta); err != nil {
			return err
		}
		if meta.Proto != ProtocolVersion {
			return fmt.Errorf("protocol version %d, we speak %d", meta.Proto, ProtocolVersion)
		}
		if meta.Gossip != at {
			return fmt.Errorf("%w: signed for %v, gossiped at %v", ErrMeta, meta.Gossip, at)
		}
		if err := g.order(r, gid, n.Name, meta, now); err != nil {
			return err
		}
	}
	if r == nil || !r.live {
		if err := g.room(r, gid, id, at.Addr(), now); err != nil {
			g.refused()
			return err
		}
	}
	if r == nil {
		// Runs memberlist never took in (an alive at incarnation 0 is
		// dropped after this check) are records too: bound them.
		if len(g.runs) >= 2*g.lim.maxPeers {
			g.pruneRuns(now)
			if len(g.runs) >= 2*g.lim.maxPeers {
				g.refused()
				return fmt.Errorf("%w: %d runs known", errGateCap, len(g.runs))
			}
		}
		r = &gateRun{id: id, key: meta.Key, started: meta.Started, addr: at}
		g.runs[n.Name] = r
		if gid = g.ids[id]; gid == nil {
			gid = &gateID{}
			g.ids[id] = gid
		}
	}
	newer := meta.Seq > r.seq
	if newer {
		r.seq, r.meta = meta.Seq, bytes.Clone(n.Meta)
	}
	if gid.newest == n.Name || meta.Started > gid.started || gid.newest == "" {
		gid.newest, gid.started = n.Name, meta.Started
		gid.seq = max(gid.seq, r.seq)
	}
	gid.seenAt = now
	if newer && r.live {
		// memberlist takes it only if its incarnation is higher; a
		// replay of the current metadata under a huge incarnation would
		// otherwise freeze the peer's presence. The signature and Seq
		// say it is the peer's newest word, whatever the incarnation.
		g.q.push(memberEvent{kind: evMeta, name: n.Name, addr: at.Addr(), port: at.Port(), meta: r.meta})
	}
	return nil
}

// order refuses metadata older than what is known of the run and the peer.
// Called with mu held.
func (g *gate) order(r *gateRun, gid *gateID, member string, meta Meta, now time.Time) error {
	if r != nil {
		if meta.Started != r.started || !bytes.Equal(meta.Key[:], r.key[:]) {
			return fmt.Errorf("%w: start time of the run changed", ErrMeta)
		}
		if meta.Seq < r.seq {
			return fmt.Errorf("%w: seq %d after %d", errGateReplay, meta.Seq, r.seq)
		}
		if meta.Seq == r.seq && r.meta != nil {
			return fmt.Errorf("%w: two metadata with seq %d", errGateReplay, meta.Seq)
		}
		return nil
	}
	if gid == nil {
		return nil
	}
	if gid.newest == member && meta.Seq < gid.seq {
		return fmt.Errorf("%w: seq %d after %d", errGateReplay, meta.Seq, gid.seq)
	}
	if gid.newest != member && meta.Started < gid.started && (gid.liveRuns > 0 || now.Sub(gid.seenAt) < runMemory) {
		return fmt.Errorf("%w: a run older than one seen", errGateReplay)
	}
	return nil
}

// room checks the caps for a run memberlist would start counting live,
// making room among the peers if it must. Called with mu held.
func (g *gate) room(r *gateRun, gid *gateID, id string, ip netip.Addr, now time.Time) error {
	verified := r != nil && r.verified
	if !verified && g.unverified >= g.lim.maxUnverified {
		return fmt.Errorf("%w: %d unverified members", errGateCap, g.unverified)
	}
	if g.perAddr[ip] >= g.lim.maxPerAddr {
		return fmt.Errorf("%w: %d members at %v", errGateCap, g.perAddr[ip], ip)
	}
	if gid != nil && gid.liveRuns >= maxRunsPerID {
		return fmt.Errorf("%w: %d live runs of one peer", errGateCap, gid.liveRuns)
	}
	if gid == nil && len(g.ids) >= g.lim.maxPeers && !g.evict(now) {
		return fmt.Errorf("%w: %d peers known", errGateCap, len(g.ids))
	}
	return nil
}

// evict forgets one offline peer to make room for a new one: one never
// verified before any verified, the longest unheard of first. Called with
// mu held.
func (g *gate) evict(now time.Time) bool {
	var pick string
	var best *gateID
	for id, e := range g.ids {
		if e.liveRuns > 0 {
			continue
		}
		if best == nil || !e.verified && best.verified || e.verified == best.verified && e.seenAt.Before(best.seenAt) {
			pick, best = id, e
		}
	}
	if best == nil {
		return false
	}
	delete(g.ids, pick)
	for name, r := range g.runs {
		if r.id == pick {
			delete(g.runs, name)
		}
	}
	g.q.push(memberEvent{kind: evForget, name: runOf0(pick)})
	g.pruneRuns(now)
	return true
}

// runOf0 is a member name for id, for events that concern the peer as a
// whole (evForget).
func runOf0(id string) string { return id + "-0000000000000000" }

// joined and left track memberlist's live members (event delegate).
func (g *gate) joined(n *memberlist.Node) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.runs[n.Name]
	if r == nil || r.live {
		return // our own node, or (never) one the gate did not see
	}
	addr, _ := netip.AddrFromSlice(n.Addr)
	r.addr = netip.AddrPortFrom(addr.Unmap(), n.Port)
	r.live = true
	g.perAddr[r.addr.Addr()]++
	if !r.verified {
		g.unverified++
	}
	if gid := g.ids[r.id]; gid != nil {
		gid.liveRuns++
		gid.seenAt = g.now()
	}
}

func (g *gate) died(n *memberlist.Node) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.runs[n.Name]
	if r == nil || !r.live {
		return
	}
	now := g.now()
	r.live, r.diedAt = false, now
	if g.perAddr[r.addr.Addr()]--; g.perAddr[r.addr.Addr()] <= 0 {
		delete(g.perAddr, r.addr.Addr())
	}
	if !r.verified {
		g.unverified--
	}
	if gid := g.ids[r.id]; gid != nil {
		gid.liveRuns--
		gid.seenAt = now
	}
	g.pruneRuns(now)
}

// pruneRuns forgets dead runs past deadRunMemory, or the oldest dead ones
// while more runs are kept than twice the peer cap. What ids remember of
// a newest run still refuses its replays. Called with mu held.
func (g *gate) pruneRuns(now time.Time) {
	limit := 2 * g.lim.maxPeers
	for name, r := range g.runs {
		if !r.live && (now.Sub(r.diedAt) > deadRunMemory || len(g.runs) >= limit) {
			delete(g.runs, name)
		}
	}
}

// verified records that a handshake proved the key of run member.
func (g *gate) verified(member string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.runs[member]
	if r == nil || r.verified {
		return
	}
	r.verified = true
	if r.live {
		g.unverified--
	}
	if gid := g.ids[r.id]; gid != nil {
		gid.verified = true
	}
}

// leaving checks a leave intent's signature against the key the run's
// metadata carried, and remembers that the run left, so that no replay of
// its alive brings it back. An intent for a run the gate does not know
// cannot be checked and is dropped.
func (g *gate) leaving(member string, sig []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.runs[member]
	if r == nil {
		return false
	}
	if r.left {
		return true
	}
	if !ed25519.Verify(r.key[:], intentSigned(member), sig) {
		return false
	}
	r.left = true
	if gid := g.ids[r.id]; gid != nil && gid.newest == member {
		gid.left = true
	}
	return true
}

// refused records that a member was refused for a cap, and wakes
// holdLoop; g.mu is held.
func (g *gate) refused() {
	g.refusedCap = true
	select {
	case g.refusedWake <- struct{}{}:
	default:
	}
}

// takeRefused reports whether a member was refused for a cap since the
// last call, and how many unverified members are live now.
func (g *gate) takeRefused() (refused bool, unverified int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	refused, g.refusedCap = g.refusedCap, false
	return refused, g.unverified
}

// counts says how many peers and unverified live runs the gate holds.
func (g *gate) counts() (peers, unverified int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ids), g.unverified
}

// checkMerge is the merge delegate's check of a join's remote state: every
// member must be signed by its own key. An honest node holds nothing else,
// so a state with one forgery comes from a forger and is refused whole.
// The caps and the order of runs are the alive delegate's business, member
// by member, as memberlist merges.
func (g *gate) checkMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if n.Name == g.self {
			continue
		}
		id, ok := splitMember(n.Name)
		if !ok {
			return fmt.Errorf("not a lanchat node name: %q", n.Name)
		}
		if id == g.selfID {
			// An earlier run of ours, still in others' lists: admit
			// refuses it alone, as it would a forgery of our id.
			continue
		}
		meta, err := VerifyMeta(n.Name, n.Meta)
		if err != nil {
			return fmt.Errorf("member %s: %w", ShortID(id), err)
		}
		addr, _ := netip.AddrFromSlice(n.Addr)
		if meta.Gossip != netip.AddrPortFrom(addr.Unmap(), n.Port) {
			return fmt.Errorf("member %s: %w: signed for another address", ShortID(id), ErrMeta)
		}
	}
	return nil
}
