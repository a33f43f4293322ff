package mesh

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// peerTable is this node's view of the other peers, kept as a state
// machine with no lock, goroutine or I/O of its own: news goes in, one
// piece at a time, and what changed comes out for the caller to publish,
// log and gossip on. Its rules (runs folded into one peer by id, an older
// run's death ignored, "left" told from "lost") are the subtle part of the
// mesh, and being pure they can be tested case by case without a network.
//
// Mesh holds it under its mutex. Everything subscribers can see changes
// only in processEvents, so events go out in the order the table changed.
type peerTable struct {
	self    string               // this node's peer id; news of it is ignored
	peers   map[string]*entry    // every peer seen since start, by peer id
	leaving map[string]time.Time // runs (member names) that announced a leave, and when
	live    int                  // live members, this node included; sizes gossip retransmits
	// pick chooses, from the address memberlist has for a run and the
	// ones its metadata lists, the one this node uses (lan.go); nil
	// keeps memberlist's.
	pick func(gossip netip.Addr, listed []netip.Addr) netip.Addr
}

// entry is one peer and the run of it the table follows.
type entry struct {
	Peer
	member       string // memberlist name of the run we follow
	alive        bool   // memberlist counts that run as a live member, or a handshake still reaches it (held)
	verifyTries  int    // failed verification dials since Verified was last reset
	seq          uint32 // the run's metadata sequence number
	everVerified bool   // some run of it was verified once
	// checking: gossip said the verified run died and a handshake is
	// asking it; held: the handshake answered, so it stays online here
	// while memberlist calls it dead (a forged dead message), until
	// memberlist takes it back or a handshake fails.
	checking, held bool
	// checkFails: checks in a row that found nobody while held; the
	// run is lost at heldMisses (see hold.go).
	checkFails int
	// unreachFrom: the run (member name) this node found it cannot reach
	// while gossip holds it alive; seenBy: how many other live members
	// gossip had then. A new run starts reachable.
	unreachFrom string
	seenBy      int
	// returning: gossip says the verified run, lost, is alive again at
	// the address it was verified at (a healed split, or a replay of its
	// last words); a handshake decides before it is shown online.
	returning *memberEvent
}

// maxVerifyTries bounds the verification dials of one run at one address,
// so a peer whose TLS port is unreachable is not dialled forever; it stays
// unverified until it changes run or address.
const maxVerifyTries = 5

// forgetLeaving is how long a leave intent is remembered. Intents name one
// run, so this needs only to outlast the gossip of that run's departure.
const forgetLeaving = 5 * time.Minute

func newPeerTable(self string) peerTable {
	return peerTable{
		self:    self,
		peers:   make(map[string]*entry),
		leaving: make(map[string]time.Time),
		live:    1,
	}
}

// applied is what one piece of news did to the table.
type applied struct {
	event   *Event   // for subscribers; nil when nothing a person would notice changed
	verify  string   // peer id whose key a handshake should now check
	relay   string   // run whose leave intent was heard for the first time: gossip it on
	refused error    // why the news was ignored, worth a log line
	check   string   // peer id whose verified run gossip called dead: ask it by handshake
	held    string   // peer id now held online against gossip: rejoin it to memberlist
	unheld  string   // peer id memberlist took back, or that left: stop rejoining it
	forgot  []string // peer ids dropped from the table: stop dialling them
}

// apply takes one piece of news about a member, as memberlist or a
// handshake gave it, at time now.
func (t *peerTable) apply(ev memberEvent, now time.Time) applied {
	return t.applyChecked(ev, now, false)
}

// applyChecked is apply; checked says a handshake has just confirmed a
// returning run.
func (t *peerTable) applyChecked(ev memberEvent, now time.Time, checked bool) applied {
	id, ok := splitMember(ev.name)
	if !ok || id == t.self {
		return applied{}
	}
	e := t.peers[id]
	switch ev.kind {
	case evJoin, evUpdate, evMeta:
		meta, err := DecodeMeta(ev.meta)
		if err != nil {
			return applied{refused: fmt.Errorf("peer %s: %w", ShortID(id), err)}
		}
		if t.pick != nil {
			// One peer, whichever of its addresses reaches it: the rest
			// of the table sees only the one this node uses.
			if a := t.pick(ev.addr, meta.AddrList()); a.IsValid() {
				ev.addr = a
			}
		}
		if e != nil && e.member == ev.name && !e.alive && e.Verified && !checked && ev.kind != evMeta &&
			e.Addr == ev.addr && e.TLSPort == meta.TLSPort && e.State == Offline {
			pending := ev
			e.returning = &pending
			return applied{check: id}
		}
		var r applied
		change := Updated
		switch {
		case ev.kind == evMeta && (e == nil || e.member != ev.name || !e.alive):
			return applied{} // newer words of a run memberlist does not hold
		case e == nil:
			e = &entry{Peer: Peer{ID: id}}
			t.peers[id] = e
			change = Joined
		case e.member != ev.name:
			if e.alive && e.Started > meta.Started {
				return applied{} // an older run of the peer, still dying
			}
			if e.held || e.checking {
				r.unheld = id
			}
			e.held, e.checking = false, false
			change = Returned
		case e.alive && meta.Seq < e.seq:
			return applied{} // older words of the run than we have
		case !e.alive:
			change = Returned
		case e.Name == meta.Name && e.State == meta.State && e.Status == meta.Status && e.Addr == ev.addr && e.GossipPort == ev.port && e.TLSPort == meta.TLSPort:
			change = "" // nothing a person would notice
		}
		if ev.kind == evJoin && e.member == ev.name && (e.held || e.checking) {
			// memberlist has the run back: its failure detector takes over.
			e.held, e.checking = false, false
			r.unheld = id
		}
		// A handshake proved the key of one run at one address; news of
		// another run, or of the same run elsewhere, is a claim again.
		if e.member != ev.name || e.Addr != ev.addr || e.TLSPort != meta.TLSPort {
			e.Verified = false
			e.verifyTries = 0
		}
		if !e.alive {
			t.live++
		}
		e.member = ev.name
		e.alive = true
		e.seq = meta.Seq
		e.Name, e.State, e.Status = meta.Name, meta.State, meta.Status
		e.Addr, e.GossipPort, e.TLSPort, e.Started = ev.addr, ev.port, meta.TLSPort, meta.Started
		e.LastSeen = now
		if !e.Verified {
			r.verify = id
		}
		if change != "" {
			r.event = &Event{Change: change, Peer: e.Peer}
		}
		return r
	case evLeave:
		if e != nil && e.member == ev.name && e.returning != nil {
			e.returning = nil // gossip takes back its word; still offline
			return applied{}
		}
		if e == nil || e.member != ev.name || !e.alive {
			return applied{}
		}
		if _, left := t.leaving[ev.name]; !left && e.Verified && !e.held {
			// Gossip is not authenticated: a forged dead message can
			// kill a live member in every memberlist. A verified run is
			// asked by handshake before it is shown offline.
			e.checking, e.checkFails = true, 0
			return applied{check: id}
		}
		return t.lose(e, now)
	case evChecked:
		if e != nil && e.member == ev.name && e.returning != nil {
			if !ev.ok || netip.AddrPortFrom(e.Addr, e.TLSPort) != ev.at {
				return applied{} // asked again at the next round, while gossip says alive
			}
			pending := *e.returning
			e.returning = nil
			return t.applyChecked(pending, now, true)
		}
		if e == nil || e.member != ev.name || !e.alive || !e.checking && !e.held {
			return applied{}
		}
		if ev.ok && netip.AddrPortFrom(e.Addr, e.TLSPort) == ev.at {
			e.LastSeen, e.checkFails = now, 0
			if e.checking {
				e.checking, e.held = false, true
				return applied{held: id}
			}
			return applied{}
		}
		if !ev.ok && !ev.refused && e.held {
			// A silence, which packet loss makes too, of a run that
			// answered since gossip called it dead: asked again at
			// the next round, lost only after heldMisses in a row.
			if e.checkFails++; e.checkFails < heldMisses {
				return applied{}
			}
		}
		r := t.lose(e, now)
		r.unheld = id
		return r
	case evForget:
		if e != nil && !e.alive {
			delete(t.peers, id)
			return applied{forgot: []string{id}}
		}
		return applied{}
	case evIntent:
		if _, seen := t.leaving[ev.name]; seen {
			return applied{}
		}
		t.leaving[ev.name] = now
		t.pruneLeaving(now)
		r := applied{relay: ev.name}
		switch {
		case e != nil && e.member == ev.name && e.alive && (e.held || e.checking):
			// memberlist already calls it dead; it left after all.
			lost := t.lose(e, now)
			r.event, r.unheld = lost.event, id
		case e != nil && e.member == ev.name && !e.alive && e.State == Offline:
			// The goodbye may arrive after failure detection already
			// called the peer lost: it left after all.
			e.State, e.returning = Left, nil
			r.event = &Event{Change: Departed, Peer: e.Peer}
		}
		return r
	case evVerified:
		return applied{event: t.markVerified(ev.name, ev.at, now)}
	case evReach:
		return applied{event: t.markReach(ev.name, ev.ok, ev.seen)}
	}
	return applied{}
}

// maxStrangersOffline is how many offline peers never verified the table
// keeps: anyone can make members of fresh keys, which then die unanswered;
// listing every one would drown the people in the list.
const maxStrangersOffline = 16

// lose marks the run of e gone: left if it said goodbye, else lost.
func (t *peerTable) lose(e *entry, now time.Time) applied {
	e.alive, e.held, e.checking = false, false, false
	e.unreachFrom, e.seenBy = "", 0 // back online is reached until shown otherwise
	e.LastSeen = now
	t.live--
	change := Lost
	e.State = Offline
	if _, ok := t.leaving[e.member]; ok {
		change, e.State = Departed, Left
	}
	r := applied{event: &Event{Change: change, Peer: e.Peer}}
	if !e.everVerified {
		r.forgot = t.pruneStrangers()
	}
	return r
}

// pruneStrangers forgets the longest unheard-of offline peers never
// verified beyond maxStrangersOffline, and says which.
func (t *peerTable) pruneStrangers() []string {
	var strangers []*entry
	for _, e := range t.peers {
		if !e.alive && !e.everVerified && e.returning == nil {
			strangers = append(strangers, e)
		}
	}
	if len(strangers) <= maxStrangersOffline {
		return nil
	}
	slices.SortFunc(strangers, func(a, b *entry) int { return a.LastSeen.Compare(b.LastSeen) })
	var out []string
	for _, e := range strangers[:len(strangers)-maxStrangersOffline] {
		delete(t.peers, e.ID)
		out = append(out, e.ID)
	}
	return out
}

// heldRuns lists the runs held online against gossip, and the runs being
// checked, with the TLS address to ask.
func (t *peerTable) heldRuns() []heldRun {
	var out []heldRun
	for _, e := range t.peers {
		if e.alive && (e.held || e.checking) || !e.alive && e.returning != nil {
			out = append(out, heldRun{id: e.ID, member: e.member, at: netip.AddrPortFrom(e.Addr, e.TLSPort)})
		}
	}
	return out
}

// heldRun is a run to ask by handshake whether it is still there.
type heldRun struct {
	id, member string
	at         netip.AddrPort
}

// markVerified records that a handshake at addr proved the key of the run
// member, and returns the Verified event the first time it does so for
// that run and address. A proof that arrives after the peer moved on (a
// new run, a new address, gone) proves nothing about what is there now.
func (t *peerTable) markVerified(member string, addr netip.AddrPort, now time.Time) *Event {
	id, ok := splitMember(member)
	if !ok {
		return nil
	}
	e := t.peers[id]
	if e == nil || e.member != member || !e.alive || e.Verified || netip.AddrPortFrom(e.Addr, e.TLSPort) != addr {
		return nil
	}
	e.Verified, e.everVerified = true, true
	e.LastSeen = now
	return &Event{Change: Verified, Peer: e.Peer}
}

// toVerify says which run to dial, and where, to verify peer id, or
// ok false when there is nothing (left) to verify.
func (t *peerTable) toVerify(id string) (member string, addr netip.AddrPort, ok bool) {
	e := t.peers[id]
	if e == nil || e.Verified || !e.alive {
		return "", netip.AddrPort{}, false
	}
	return e.member, netip.AddrPortFrom(e.Addr, e.TLSPort), true
}

// retryVerify counts a failed verification dial of run member and says
// whether to try again.
func (t *peerTable) retryVerify(id, member string) bool {
	e := t.peers[id]
	if e == nil || e.member != member || e.Verified || e.verifyTries >= maxVerifyTries {
		return false
	}
	e.verifyTries++
	return true
}

// pruneLeaving forgets intents of runs long gone.
func (t *peerTable) pruneLeaving(now time.Time) {
	for name, at := range t.leaving {
		if now.Sub(at) > forgetLeaving {
			delete(t.leaving, name)
		}
	}
}

// splitMember reads a memberlist node name, "<peer id>-<16 hex nonce>".
// Each run of a node has its own name, so a restarted peer joins as a new
// member at once, on any port, instead of waiting for memberlist to give
// up on the old run; the peer table folds runs back into one peer by id.
func splitMember(name string) (id string, ok bool) {
	id, nonce, found := strings.Cut(name, "-")
	if !found || !ValidID(id) || len(nonce) != 16 {
		return "", false
	}
	if _, err := strconv.ParseUint(nonce, 16, 64); err != nil {
		return "", false
	}
	return id, true
}

// markReach records whether this node reaches the live run member (see
// reach.go), and returns the Unreachable or Reachable event when that
// changed. seen is the count of other live members, kept while unreachable.
func (t *peerTable) markReach(member string, ok bool, seen int) *Event {
	id, _ := splitMember(member)
	e := t.peers[id]
	if e == nil || e.member != member || !e.alive {
		return nil
	}
	was := e.unreachFrom == member
	switch {
	case !ok && !was:
		e.unreachFrom, e.seenBy = member, seen
		p := e.Peer
		p.SeenBy = seen
		return &Event{Change: Unreachable, Peer: p}
	case !ok:
		e.seenBy = seen
	case was:
		e.unreachFrom, e.seenBy = "", 0
		p := e.Peer
		p.Reachable = true
		return &Event{Change: Reachable, Peer: p}
	}
	return nil
}

// reachable fills in p's Reachable and SeenBy from the table.
func (t *peerTable) reachable(p *Peer) {
	e := t.peers[p.ID]
	if e == nil || !e.alive {
		p.Reachable, p.SeenBy = false, 0
		return
	}
	if e.unreachFrom == e.member {
		p.Reachable, p.SeenBy = false, e.seenBy
		return
	}
	p.Reachable, p.SeenBy = true, 0
}
