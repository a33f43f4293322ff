package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// Room rules tried as a hostile host on the LAN would: it holds valid
// keys of its own (as many as it likes) and signs whatever it wants
// with them, but cannot sign for anyone else.

// roomEvent seals an event of p in room, as p.
func roomEvent(t testing.TB, p party, room string, seq uint64, kind, body, id string) *message.Envelope {
	t.Helper()
	env := &message.Envelope{ID: id, Author: p.id, AuthorName: p.name, Conversation: room, Seq: seq,
		Time: message.NewClock(time.Now).Now(), Kind: kind, Body: body}
	sealed, err := message.Seal(env, p.key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := message.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// inGeneral waits until n has joined #general.
func inGeneral(t *testing.T, n *lanNode) {
	t.Helper()
	testutil.WaitForErr(t, 5*time.Second, func() error {
		if _, joined, _ := n.svc.rooms.members(context.Background(), GeneralRoom); !joined {
			return errors.New("not in #general yet")
		}
		return nil
	})
}

// A hostile author signs its second event with the id of its first. The
// store skips the second row as a duplicate (id, author), but the head
// moved to 2: the node then announces two events and serves one, and
// every pull of the room from it broke off at that author, so nobody
// caught up on the room from that node.
func TestHostileAuthorReusingAnEventIDCannotBreakCatchUp(t *testing.T) {
	l := newLAN()
	ann := l.add(t, "ann")
	inGeneral(t, ann)
	ctx := context.Background()
	mallory := newParty(t, "mallory")

	join := roomEvent(t, mallory, GeneralRoom, 1, message.KindJoin, "", "")
	if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{join}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	for _, c := range []struct {
		name string
		envs []*message.Envelope
	}{
		{"a later batch", []*message.Envelope{roomEvent(t, mallory, GeneralRoom, 2, message.KindText, "same id as my join", join.ID)}},
		{"one batch", func() []*message.Envelope {
			a := roomEvent(t, mallory, GeneralRoom, 2, message.KindText, "two", "")
			return []*message.Envelope{a, roomEvent(t, mallory, GeneralRoom, 3, message.KindText, "three, same id", a.ID)}
		}()},
	} {
		ann.svc.rooms.accept(ctx, mallory.id, c.envs)
		heads, err := ann.svc.Heads(ctx, GeneralRoom)
		if err != nil {
			t.Fatal(err)
		}
		n := heads[mallory.id]
		page, err := ann.svc.Page(ctx, GeneralRoom, mallory.id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(page)) != n {
			t.Fatalf("%s: heads announce %d of mallory's events, %d are held", c.name, n, len(page))
		}
		// What a restart reads back agrees with what is in memory.
		stored, err := ann.st.RoomHeads(ctx, GeneralRoom)
		if err != nil || stored[mallory.id].N != n {
			t.Fatalf("%s: stored head %d, in memory %d (%v)", c.name, stored[mallory.id].N, n, err)
		}
	}
	// And the node still serves the room whole to a member catching up.
	ben := l.add(t, "ben")
	inGeneral(t, ben)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ben.svc.rooms.pull(pctx, ann.p.id, GeneralRoom); err != nil {
		t.Fatalf("ben's pull from ann: %v", err)
	}
	if got := fmt.Sprint(ben.roomLog(t, GeneralRoom)); len(ben.roomLog(t, GeneralRoom)) < 3 {
		t.Fatalf("ben holds %s", got)
	}
}

// tarpit is a catch-up client for which some peers are hostile servers:
// they answer a pull with one valid frame now and then, just inside the
// protocol's per-frame timeout, for ever (here: until the pull's context
// ends). Pulls from other peers go to the fake LAN.
type tarpit struct {
	RoomSync
	mu      sync.Mutex // guards hostile and held
	hostile map[string]bool
	held    int // pulls being held now
}

func (tp *tarpit) isHostile(peer string) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.hostile[peer]
}

func (tp *tarpit) Pull(ctx context.Context, peer, room string, have map[string]uint64, accept func(context.Context, string, string, []*message.Envelope) error) error {
	if !tp.isHostile(peer) {
		return tp.RoomSync.Pull(ctx, peer, room, have, accept)
	}
	tp.mu.Lock()
	tp.held++
	tp.mu.Unlock()
	<-ctx.Done()
	tp.mu.Lock()
	tp.held--
	tp.mu.Unlock()
	return ctx.Err()
}

// gapFrom makes n notice a gap in a fresh hostile key's events in room,
// which makes n pull room from that key.
func gapFrom(t *testing.T, n *lanNode, tp *tarpit, room string) party {
	t.Helper()
	h := newParty(t, "h")
	tp.mu.Lock()
	tp.hostile[h.id] = true
	tp.mu.Unlock()
	errs := n.svc.rooms.accept(context.Background(), h.id, []*message.Envelope{roomEvent(t, h, room, 2, message.KindText, "gap", "")})
	if !errors.Is(errs[0], errGap) {
		t.Fatalf("a gap was not noticed: %v", errs[0])
	}
	return h
}

// Four hostile peers (fresh keys) each show a gap and then hold the pull
// that fetches it open, a frame at a time: every slot for pulls was
// theirs for as long as they liked, and no member could catch up from
// anyone else.
func TestHostilePeersHoldingPullsOpenCannotStopCatchUp(t *testing.T) {
	l := newLAN()
	tp := &tarpit{hostile: map[string]bool{}}
	ann := l.addWith(t, "ann", func(c *Config) {
		tp.RoomSync = c.RoomSync
		c.RoomSync = tp
		c.RoomPullTimeout = 300 * time.Millisecond
	})
	ben := l.add(t, "ben")
	inGeneral(t, ann)
	inGeneral(t, ben)
	l.met()
	waitSame(t, GeneralRoom, []*lanNode{ann, ben}, 2)

	for range maxPulls {
		gapFrom(t, ann, tp, GeneralRoom)
	}
	testutil.WaitForErr(t, 5*time.Second, func() error {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		if tp.held != maxPulls {
			return fmt.Errorf("%d pulls held, want %d", tp.held, maxPulls)
		}
		return nil
	})
	// ben writes while ann cannot hear; then ann learns ben is ahead.
	l.mu.Lock()
	l.group[ben.p.id] = 1
	l.mu.Unlock()
	if _, err := ben.svc.SendRoom(context.Background(), GeneralRoom, "did you get this?", false); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	delete(l.group, ben.p.id)
	l.mu.Unlock()
	ann.svc.Ahead(ben.p.id, GeneralRoom)
	waitSame(t, GeneralRoom, []*lanNode{ann, ben}, 3)
}

// Every fresh key that shows a gap made a goroutine wait for a pull
// slot, with no bound: a stranger with a thousand keys had a thousand
// goroutines (and their pulls) queued on the node.
func TestHostileFreshKeysCannotQueueUnboundedPulls(t *testing.T) {
	l := newLAN()
	tp := &tarpit{hostile: map[string]bool{}}
	ann := l.addWith(t, "ann", func(c *Config) {
		tp.RoomSync = c.RoomSync
		c.RoomSync = tp
	})
	inGeneral(t, ann)
	for range maxPendingPulls + 100 {
		gapFrom(t, ann, tp, GeneralRoom)
	}
	ann.svc.rooms.pmu.Lock()
	n := len(ann.svc.rooms.pulling)
	ann.svc.rooms.pmu.Unlock()
	if n > maxPendingPulls {
		t.Fatalf("%d pulls pending, limit %d", n, maxPendingPulls)
	}
}

// countingPresence counts the lookups of one peer.
type countingPresence struct {
	Presence
	mu   sync.Mutex // guards peer
	peer int
}

func (p *countingPresence) Peer(id string) (mesh.Peer, bool) {
	p.mu.Lock()
	p.peer++
	p.mu.Unlock()
	return p.Presence.Peer(id)
}

func (p *countingPresence) lookups() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peer
}

// Mentions looked every member's name up again for every word of a
// message that starts with '@': a 64 KiB message of "@x @x @x …" in a
// room of a few hundred members (fresh keys join for free) cost millions
// of lookups on the receiving stream, for each such message.
func TestHostileMentionFloodIsBounded(t *testing.T) {
	l := newLAN()
	cp := &countingPresence{}
	ann := l.addWith(t, "ann", func(c *Config) {
		cp.Presence = c.Presence
		c.Presence = cp
	})
	inGeneral(t, ann)
	ctx := context.Background()
	const members = 200
	for range members {
		p := newParty(t, "p")
		if errs := ann.svc.rooms.accept(ctx, p.id, []*message.Envelope{roomEvent(t, p, GeneralRoom, 1, message.KindJoin, "", "")}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	mallory := newParty(t, "mallory")
	body := strings.Repeat("@ann @nobody ", message.MaxText/len("@ann @nobody "))
	envs := []*message.Envelope{
		roomEvent(t, mallory, GeneralRoom, 1, message.KindJoin, "", ""),
		roomEvent(t, mallory, GeneralRoom, 2, message.KindText, body, ""),
	}
	before := cp.lookups()
	if errs := ann.svc.rooms.accept(ctx, mallory.id, envs); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if n := cp.lookups() - before; n > 4*(members+2) {
		t.Fatalf("one message cost %d presence lookups in a room of %d", n, members+2)
	}
	var got []string
	for _, m := range ann.ev.messages() {
		if m.Text == body {
			got = m.Mentions
		}
	}
	if len(got) != 1 || got[0] != ann.p.id {
		t.Fatalf("mentions %v, want ann alone", got)
	}
}

// A catch-up request made the server read 256 events of an author at
// once, whatever their size: with 64 KiB bodies, 16 MiB per request,
// held by every stream a stranger opened with its fresh keys.
func TestHostilePullersCannotMakeTheServerHoldHugePages(t *testing.T) {
	l := newLAN()
	ann := l.add(t, "ann")
	inGeneral(t, ann)
	ctx := context.Background()
	mallory := newParty(t, "mallory")
	envs := []*message.Envelope{roomEvent(t, mallory, GeneralRoom, 1, message.KindJoin, "", "")}
	big := strings.Repeat("x", message.MaxText-100)
	for s := uint64(2); s <= 64; s++ {
		envs = append(envs, roomEvent(t, mallory, GeneralRoom, s, message.KindText, big, ""))
	}
	for i, err := range ann.svc.rooms.accept(ctx, mallory.id, envs) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	page, err := ann.svc.Page(ctx, GeneralRoom, mallory.id, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, b := range page {
		size += len(b)
	}
	if size > maxPageBytes+message.MaxEnvelope {
		t.Fatalf("one page holds %d events, %d bytes", len(page), size)
	}
	if len(page) == 0 || len(page) == len(envs) {
		t.Fatalf("page of %d events", len(page))
	}
}

// A stream still delivering while the service stops (the message
// service closes after the chat service) started pulls in the window
// between the context check and the WaitGroup's Add, concurrently with
// Close's Wait: the race detector's "WaitGroup misuse", and a pull that
// ran on after Close had returned, against a closed store.
func TestRoomTriggersRacingCloseStartNothingAfterIt(t *testing.T) {
	for range 20 {
		l := newLAN()
		ann := l.add(t, "ann")
		stop := make(chan struct{})
		done := make(chan struct{})
		going := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ann.svc.Ahead(fmt.Sprintf("peer%d", i), GeneralRoom)
				ann.svc.PeerMet(fmt.Sprintf("peer%d", i))
				if i == 10 {
					close(going)
				}
			}
		}()
		<-going
		ann.svc.Close()
		close(stop)
		<-done
		ann.stop()
	}
}

// An author may sign as many different events under one sequence
// number as it likes; each was kept as evidence, unseen, at up to 64 KiB
// a piece: a disk filled by something nobody is shown.
func TestHostileAuthorCannotFillTheDiskWithConflictEvidence(t *testing.T) {
	l := newLAN()
	ann := l.add(t, "ann")
	inGeneral(t, ann)
	ctx := context.Background()
	mallory := newParty(t, "mallory")
	first := []*message.Envelope{
		roomEvent(t, mallory, GeneralRoom, 1, message.KindJoin, "", ""),
		roomEvent(t, mallory, GeneralRoom, 2, message.KindText, "the one", ""),
	}
	if errs := ann.svc.rooms.accept(ctx, mallory.id, first); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	for i := range 200 {
		ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{roomEvent(t, mallory, GeneralRoom, 2, message.KindText, fmt.Sprintf("other %d", i), "")})
	}
	ev, err := ann.st.RoomConflicts(ctx, GeneralRoom)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) == 0 || len(ev) > store.MaxConflictsPerAuthor {
		t.Fatalf("%d conflicting events kept, want 1 to %d", len(ev), store.MaxConflictsPerAuthor)
	}
	if log := ann.roomLog(t, GeneralRoom); len(log) != 3 {
		t.Fatalf("log %q", log)
	}
}

// gapper is a transport to which one peer always answers that the event
// leaves a gap in its author's sequence: what a member that is catching
// up says, and what a hostile member can say for ever.
type gapper struct {
	Transport
	mu      sync.Mutex // guards hostile
	hostile string
}

func (g *gapper) SendBatch(ctx context.Context, to string, items []message.Queued, written func(bool)) []error {
	g.mu.Lock()
	h := g.hostile
	g.mu.Unlock()
	if to != h {
		return g.Transport.SendBatch(ctx, to, items, written)
	}
	written(true)
	errs := make([]error, len(items))
	for i := range errs {
		errs[i] = fmt.Errorf("rejected: %w: have 0 of the author's events", errGap)
	}
	return errs
}

// With --wait, a room send retried a member that answers "gap" until
// the caller gave up: one hostile member made every waiting send to the
// room hang for ever.
func TestHostileMemberClaimingAGapCannotHoldAWaitingSend(t *testing.T) {
	l := newLAN()
	g := &gapper{}
	ann := l.addWith(t, "ann", func(c *Config) {
		g.Transport = c.Transport
		c.Transport = g
		c.RoomPullTimeout = 300 * time.Millisecond
	})
	mal := l.add(t, "mal")
	inGeneral(t, ann)
	inGeneral(t, mal)
	l.met()
	waitSame(t, GeneralRoom, []*lanNode{ann, mal}, 2)
	g.mu.Lock()
	g.hostile = mal.p.id
	g.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	res, err := ann.svc.SendRoom(ctx, GeneralRoom, "anyone?", true)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a waiting send took %v", d)
	}
	if res.Online != 1 || res.Reached != 0 {
		t.Fatalf("result %+v", res)
	}
}
