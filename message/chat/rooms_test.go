package chat

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// lan is a fake network of chat services: direct streams and catch-up
// go straight to the other service, when the two can reach each other.
type lan struct {
	mu    sync.Mutex // guards the fields below
	nodes map[string]*lanNode
	group map[string]int // partition group; peers in different groups cannot reach each other
	down  map[string]bool
}

type lanNode struct {
	lan  *lan
	p    party
	svc  *Service
	st   *store.Store
	ev   *events
	stop func()
}

func newLAN() *lan {
	return &lan{nodes: map[string]*lanNode{}, group: map[string]int{}, down: map[string]bool{}}
}

func (l *lan) reach(a, b string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.nodes[b]
	return ok && !l.down[a] && !l.down[b] && l.group[a] == l.group[b]
}

func (l *lan) node(id string) *lanNode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[id]
}

// presence of the LAN as one node sees it.
type lanPresence struct {
	l    *lan
	self string
}

func (p lanPresence) Peers() []mesh.Peer {
	p.l.mu.Lock()
	var ids []string
	for id := range p.l.nodes {
		ids = append(ids, id)
	}
	p.l.mu.Unlock()
	var out []mesh.Peer
	for _, id := range ids {
		if q, ok := p.Peer(id); ok {
			out = append(out, q)
		}
	}
	return out
}

func (p lanPresence) Peer(id string) (mesh.Peer, bool) {
	n := p.l.node(id)
	if n == nil {
		return mesh.Peer{}, false
	}
	st := mesh.Offline
	if p.l.reach(p.self, id) {
		st = mesh.Available
	}
	return mesh.Peer{ID: id, Name: n.p.name, State: st}, true
}

// lanLink is one node's transport and catch-up client.
type lanLink struct {
	l    *lan
	self string
}

func (k lanLink) SendBatch(ctx context.Context, to string, items []message.Queued, written func(bool)) []error {
	errs := make([]error, len(items))
	n := k.l.node(to)
	if !k.l.reach(k.self, to) || n == nil {
		written(false)
		for i := range errs {
			errs[i] = fmt.Errorf("peer %s unreachable", mesh.ShortID(to))
		}
		return errs
	}
	envs := make([]*message.Envelope, len(items))
	for i, it := range items {
		env, err := message.Open(it.Sealed)
		if err != nil {
			panic(err)
		}
		envs[i] = env
	}
	written(true)
	return n.svc.DeliverBatch(ctx, envs)
}

func (k lanLink) Pull(ctx context.Context, peer, room string, have map[string]uint64, accept func(context.Context, string, string, []*message.Envelope) error) error {
	n := k.l.node(peer)
	if !k.l.reach(k.self, peer) || n == nil {
		return fmt.Errorf("peer %s unreachable", mesh.ShortID(peer))
	}
	if err := n.svc.Authorize(k.self, room); err != nil {
		return err
	}
	// As roomsync's server does: the room's settings first, then each
	// author's events past the client's vector.
	state, err := n.svc.State(ctx, room)
	if err != nil {
		return err
	}
	if len(state) > 0 {
		envs := make([]*message.Envelope, len(state))
		for i, b := range state {
			if envs[i], err = message.Open(b); err != nil {
				return err
			}
		}
		if err := accept(ctx, peer, room, envs); err != nil {
			return err
		}
	}
	heads, err := n.svc.Heads(ctx, room)
	if err != nil {
		return err
	}
	// As roomsync's server does: tell the source where the client is ahead.
	for author, count := range have {
		if count > heads[author] {
			defer n.svc.Ahead(k.self, room)
			break
		}
	}
	for author, count := range heads {
		for after := have[author]; after < count; {
			page, err := n.svc.Page(ctx, room, author, after, 7)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return fmt.Errorf("no events of %s after %d", mesh.ShortID(author), after)
			}
			envs := make([]*message.Envelope, len(page))
			for i, b := range page {
				if envs[i], err = message.Open(b); err != nil {
					return err
				}
			}
			if err := accept(ctx, peer, room, envs); err != nil {
				return err
			}
			after = envs[len(envs)-1].Seq // a pruned author's first page starts at its witness
		}
	}
	return nil
}

func (k lanLink) Index(ctx context.Context, peer string) ([]*message.Envelope, error) {
	n := k.l.node(peer)
	if !k.l.reach(k.self, peer) || n == nil {
		return nil, fmt.Errorf("peer %s unreachable", mesh.ShortID(peer))
	}
	mine, err := n.svc.Memberships(ctx)
	if err != nil {
		return nil, err
	}
	var out []*message.Envelope
	for _, b := range mine {
		env, err := message.Open(b)
		if err != nil {
			return nil, err
		}
		out = append(out, env)
	}
	return out, nil
}

func (l *lan) add(t *testing.T, name string) *lanNode { return l.addWith(t, name, nil) }

// addWith adds a node whose Config edit changes first.
func (l *lan) addWith(t *testing.T, name string, edit func(*Config)) *lanNode {
	t.Helper()
	p := newParty(t, name)
	dir := t.TempDir()
	opt := store.DefaultOptions()
	opt.Synchronous = "NORMAL"
	opt.Logger = testutil.Logger(t, slog.LevelWarn)
	st, err := store.Open(filepath.Join(dir, "history.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	n := &lanNode{lan: l, p: p, st: st, ev: &events{}}
	link := lanLink{l: l, self: p.id}
	cfg := Config{
		Store: st, Self: p.id, Key: p.key, Name: func() string { return name },
		Presence: lanPresence{l: l, self: p.id}, Transport: link, RoomSync: link,
		Publish: n.ev.publish, Logger: testutil.Logger(t, slog.LevelWarn),
	}
	if edit != nil {
		edit(&cfg)
	}
	n.svc, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.nodes[p.id] = n
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.svc.Run(ctx) }()
	n.stop = sync.OnceFunc(func() { cancel(); <-done; st.Close() })
	t.Cleanup(n.stop)
	return n
}

// met tells every node that every node it can reach was verified, as
// the mesh does when peers meet.
func (l *lan) met() {
	l.mu.Lock()
	var all []*lanNode
	for _, n := range l.nodes {
		all = append(all, n)
	}
	l.mu.Unlock()
	for _, a := range all {
		for _, b := range all {
			if a != b && l.reach(a.p.id, b.p.id) {
				a.svc.PeerMet(b.p.id)
			}
		}
	}
}

// roomLog is a node's history of room as comparable lines.
func (n *lanNode) roomLog(t *testing.T, room string) []string {
	t.Helper()
	recs, err := n.st.History(context.Background(), store.Query{Room: room, Kinds: []string{message.KindText, message.KindJoin, message.KindLeave, message.KindRetention}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Author[:6] + " " + r.Kind + " " + r.Body
	}
	return out
}

func waitSame(t *testing.T, room string, nodes []*lanNode, want int) {
	t.Helper()
	testutil.WaitForErr(t, 20*time.Second, func() error {
		first := nodes[0].roomLog(t, room)
		if want > 0 && len(first) != want {
			return fmt.Errorf("%s holds %d events of %s, want %d", nodes[0].p.name, len(first), room, want)
		}
		for _, n := range nodes[1:] {
			if got := n.roomLog(t, room); !slices.Equal(got, first) {
				return fmt.Errorf("%s and %s differ: %d and %d events", nodes[0].p.name, n.p.name, len(first), len(got))
			}
		}
		return nil
	})
}

func TestRoomConvergesAcrossPartitionsLateJoinersAndAbsentAuthors(t *testing.T) {
	l := newLAN()
	var nodes []*lanNode
	for _, name := range []string{"ann", "ben", "cat", "dan", "eve"} {
		nodes = append(nodes, l.add(t, name))
	}
	l.met()
	ctx := context.Background()
	// Everyone is in #general from the start.
	waitSame(t, GeneralRoom, nodes, 5)

	// Split: ann, ben, cat | dan, eve; both sides talk.
	l.mu.Lock()
	l.group[nodes[3].p.id], l.group[nodes[4].p.id] = 1, 1
	l.mu.Unlock()
	sent := 0
	for i := range 20 {
		n := nodes[i%5]
		if _, err := n.svc.SendRoom(ctx, GeneralRoom, fmt.Sprintf("%s says %d", n.p.name, i), false); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	// cat goes away, after writing things only its side has.
	if _, err := nodes[2].svc.SendRoom(ctx, GeneralRoom, "cat's last word", false); err != nil {
		t.Fatal(err)
	}
	sent++
	waitSame(t, GeneralRoom, nodes[:3], 0)
	l.mu.Lock()
	l.down[nodes[2].p.id] = true
	delete(l.group, nodes[3].p.id)
	delete(l.group, nodes[4].p.id) // healed, but cat is gone
	l.mu.Unlock()
	l.met()
	live := []*lanNode{nodes[0], nodes[1], nodes[3], nodes[4]}
	waitSame(t, GeneralRoom, live, 5+sent)

	// A latecomer joins #general (it did so at start) and a new room.
	fay := l.add(t, "fay")
	l.met()
	if _, err := nodes[0].svc.JoinRoom(ctx, "#ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].svc.SendRoom(ctx, "#ops", "only for ops", true); err != nil {
		t.Fatal(err)
	}
	if _, err := fay.svc.JoinRoom(ctx, "#ops"); err != nil {
		t.Fatal(err)
	}
	waitSame(t, GeneralRoom, append(live, fay), 6+sent)
	waitSame(t, "#ops", []*lanNode{nodes[0], fay}, 3)

	// cat returns and catches up; nothing twice, one order everywhere.
	l.mu.Lock()
	delete(l.down, nodes[2].p.id)
	l.mu.Unlock()
	l.met()
	all := append(append([]*lanNode{}, nodes...), fay)
	waitSame(t, GeneralRoom, all, 6+sent)
	seen := map[string]bool{}
	for _, line := range all[0].roomLog(t, GeneralRoom) {
		if seen[line] {
			t.Fatalf("%q twice", line)
		}
		seen[line] = true
	}
	// Members: everyone in #general; ben knows who is in #ops without being in it.
	infos, err := nodes[1].svc.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ops *RoomInfo
	for i := range infos {
		if infos[i].Name == "#ops" {
			ops = &infos[i]
		}
	}
	if ops == nil || ops.Joined || ops.MembersTotal != 2 {
		t.Fatalf("ben's view of #ops: %+v (rooms %+v)", ops, infos)
	}
}

func TestRoomRefusesNonMembersGapsAndConflicts(t *testing.T) {
	l := newLAN()
	ann := l.add(t, "ann")
	ctx := context.Background()
	testutil.WaitForErr(t, 5*time.Second, func() error {
		if _, err := ann.svc.RoomInfo(ctx, GeneralRoom); err != nil {
			return err
		}
		if ids, joined, _ := ann.svc.rooms.members(ctx, GeneralRoom); !joined || len(ids) != 1 {
			return fmt.Errorf("ann not in #general yet")
		}
		return nil
	})
	mallory := newParty(t, "mallory")
	ev := func(seq uint64, kind, body string) *message.Envelope {
		return roomEvent(t, mallory, GeneralRoom, seq, kind, body, "")
	}
	for _, c := range []struct {
		name string
		env  *message.Envelope
		want error
	}{
		{"message before joining", ev(1, message.KindText, "hi"), ErrNotMember},
		{"gap", ev(3, message.KindText, "hi"), errGap},
	} {
		errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{c.env})
		if !strings.Contains(fmt.Sprint(errs[0]), c.want.Error()) {
			t.Errorf("%s: %v, want %v", c.name, errs[0], c.want)
		}
	}
	join := ev(1, message.KindJoin, "")
	if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{join, ev(2, message.KindText, "now I may")}); errs[0] != nil || errs[1] != nil {
		t.Fatalf("join then message: %v", errs)
	}
	if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{join}); errs[0] != nil {
		t.Fatalf("the same join again: %v, want a duplicate (nil)", errs[0])
	}
	other := ev(2, message.KindText, "I never said that")
	if errs := ann.svc.rooms.accept(ctx, mallory.id, []*message.Envelope{other}); errs[0] == nil {
		t.Fatal("a second event under seq 2 was taken")
	}
	log := ann.roomLog(t, GeneralRoom)
	if len(log) != 3 || !strings.HasSuffix(log[2], "now I may") {
		t.Fatalf("log %q", log)
	}
	ev2, err := ann.st.RoomConflicts(ctx, GeneralRoom)
	if err != nil || len(ev2) != 1 || ev2[0].Env.Body != "I never said that" {
		t.Fatalf("evidence %v, %v", ev2, err)
	}
	if err := CheckRoom("#Bad Name"); err == nil {
		t.Fatal("a bad room name passed")
	}
	if _, err := ann.svc.SendRoom(ctx, "#nowhere", "hi", false); err == nil {
		t.Fatal("sent to a room ann is not in")
	}
}

// Two nodes holding random prefixes of one room's history end up with
// its union after pulling from each other, whatever the prefixes.
func TestRoomPullsConvergeToTheUnion(t *testing.T) {
	authors := make([]party, 4)
	for i := range authors {
		authors[i] = newParty(t, fmt.Sprintf("a%d", i))
	}
	clock := message.NewClock(time.Now)
	// One history: each author joins, then writes.
	var hist [][]*message.Envelope // by author
	for _, a := range authors {
		var evs []*message.Envelope
		for s := uint64(1); s <= 30; s++ {
			kind, body := message.KindText, fmt.Sprintf("%s %d", a.name, s)
			if s == 1 {
				kind, body = message.KindJoin, ""
			}
			env := &message.Envelope{Author: a.id, AuthorName: a.name, Conversation: "#r", Seq: s, Time: clock.Now(), Kind: kind, Body: body}
			sealed, err := message.Seal(env, a.key)
			if err != nil {
				t.Fatal(err)
			}
			env, _ = message.Open(sealed)
			evs = append(evs, env)
		}
		hist = append(hist, evs)
	}
	for seed := range 8 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		l := newLAN()
		x, y := l.add(t, "x"), l.add(t, "y")
		ctx := context.Background()
		want := 2 // x's and y's joins
		for _, n := range []*lanNode{x, y} {
			if _, err := n.svc.JoinRoom(ctx, "#r"); err != nil {
				t.Fatal(err)
			}
		}
		for _, evs := range hist {
			most := 0
			for _, n := range []*lanNode{x, y} {
				k := rng.IntN(len(evs) + 1)
				most = max(most, k)
				if k == 0 {
					continue
				}
				for i, err := range n.svc.rooms.accept(ctx, evs[0].Author, evs[:k]) {
					if err != nil {
						t.Fatalf("seed %d: prefix event %d: %v", seed, i, err)
					}
				}
			}
			want += most
		}
		if err := x.svc.rooms.pull(ctx, y.p.id, "#r"); err != nil {
			t.Fatal(err)
		}
		if err := y.svc.rooms.pull(ctx, x.p.id, "#r"); err != nil {
			t.Fatal(err)
		}
		// Union: every event of the history, plus both joins.
		if gx, gy := x.roomLog(t, "#r"), y.roomLog(t, "#r"); len(gx) != want || !slices.Equal(gx, gy) {
			t.Fatalf("seed %d: x holds %d, y %d, want %d each and equal", seed, len(gx), len(gy), want)
		}
		x.stop()
		y.stop()
	}
}

// TestOneStrangerCannotStopUsLearningOfRooms: a key announcing joins to
// hundreds of rooms fills only its own quota of the directory, and a
// real member's new room is still heard of.
func TestOneStrangerCannotStopUsLearningOfRooms(t *testing.T) {
	l := newLAN()
	ann := l.add(t, "ann")
	ctx := context.Background()
	join := func(p party, room string) *message.Envelope {
		return roomEvent(t, p, room, 1, message.KindJoin, "", "")
	}
	mallory := newParty(t, "mallory")
	var flood []*message.Envelope
	for i := range 3 * maxRoomsPerAuthor {
		flood = append(flood, join(mallory, fmt.Sprintf("#junk%d", i)))
	}
	refused := 0
	for _, err := range ann.svc.rooms.accept(ctx, mallory.id, flood) {
		if err != nil {
			refused++
		}
	}
	if refused != 2*maxRoomsPerAuthor {
		t.Fatalf("%d of %d junk rooms refused, want %d", refused, len(flood), 2*maxRoomsPerAuthor)
	}
	bob := newParty(t, "bob")
	if errs := ann.svc.rooms.accept(ctx, bob.id, []*message.Envelope{join(bob, "#ops")}); errs[0] != nil {
		t.Fatalf("bob's join of #ops refused: %v", errs[0])
	}
	if ids, _, err := ann.svc.rooms.members(ctx, "#ops"); err != nil || !slices.Equal(ids, []string{bob.id}) {
		t.Fatalf("#ops members %v, %v", ids, err)
	}
}
