package roomsync

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"lanchat/mesh"
	"lanchat/message"
)

// sameEvents fails unless got holds exactly want's events.
func sameEvents(t *testing.T, what string, got, want map[string][][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d authors, want %d", what, len(got), len(want))
	}
	for a, evs := range want {
		g := got[a]
		if len(g) != len(evs) {
			t.Fatalf("%s: %d events of %s, want %d", what, len(g), mesh.ShortID(a), len(evs))
		}
		for i := range evs {
			if !bytes.Equal(g[i], evs[i]) {
				t.Fatalf("%s: event %d of %s differs", what, i+1, mesh.ShortID(a))
			}
		}
	}
}

// A client holding a random prefix of each author's events pulls the rest
// from a server holding all: afterwards it holds what the server does,
// having received only what it lacked, in pages of the configured size.
func TestPullRandomHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	counts := make([]int, 6)
	for i := range counts {
		counts[i] = rng.IntN(120)
	}
	counts[0] = 0 // an author of whom neither holds anything
	h := newHistory(t, "#general", counts)
	n := newTestNet()
	small := func(cfg *Config) { cfg.PageEvents, cfg.PageBytes = 16, 3000 }
	server, client := newPeer(t, n, small, nil), newPeer(t, n, nil, nil)
	all, some := map[string]int{}, map[string]int{}
	missing := 0
	for i, a := range h.authors {
		all[a.id] = len(h.events[a.id])
		if i != 1 { // author 1: one the client lacks entirely
			some[a.id] = rng.IntN(all[a.id] + 1)
		}
		missing += all[a.id] - some[a.id]
	}
	h.give(server.src, all)
	h.give(client.src, some)

	st, err := client.s.Pull(ctxT(t), server.id.id, h.room, client.src.vector(h.room), client.src)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "client after the pull", client.src.events(h.room), server.src.events(h.room))
	if st.Events != missing || st.Pages < missing/16 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Fatalf("stats %+v, %d events were missing", st, missing)
	}
	server.src.locked(func() {
		if len(server.src.aheads) != 0 {
			t.Errorf("Ahead called: %+v", server.src.aheads)
		}
	})
	// Again: nothing is missing, nothing comes.
	st, err = client.s.Pull(ctxT(t), server.id.id, h.room, client.src.vector(h.room), client.src)
	if err != nil || st.Events != 0 || st.Pages != 0 {
		t.Fatalf("second pull: %+v, %v", st, err)
	}
}

// The convergence property: two members holding any prefix-closed parts
// of one history hold its union after each has pulled from the other, and
// each server learns (Ahead) exactly the authors the client had more of.
func TestPullConverges(t *testing.T) {
	h := newHistory(t, "#dev", []int{30, 1, 17, 40, 0, 9, 25, 3})
	n := newTestNet()
	cfg := func(c *Config) { c.PageEvents, c.RequestBurst = 8, 1000 }
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 99))
		a, b := newPeer(t, n, cfg, nil), newPeer(t, n, cfg, nil)
		na, nb := map[string]int{}, map[string]int{}
		union := map[string][][]byte{}
		var aAhead []string // authors of whom a holds more than b
		for _, au := range h.authors {
			evs := h.events[au.id]
			na[au.id], nb[au.id] = rng.IntN(len(evs)+1), rng.IntN(len(evs)+1)
			if rng.IntN(4) == 0 {
				na[au.id] = 0
			}
			if k := max(na[au.id], nb[au.id]); k > 0 {
				union[au.id] = evs[:k]
			}
			if na[au.id] > nb[au.id] {
				aAhead = append(aAhead, au.id)
			}
		}
		slices.Sort(aAhead)
		h.give(a.src, na)
		h.give(b.src, nb)
		if _, err := a.s.Pull(ctxT(t), b.id.id, h.room, a.src.vector(h.room), a.src); err != nil {
			t.Fatalf("seed %d: a from b: %v", seed, err)
		}
		if _, err := b.s.Pull(ctxT(t), a.id.id, h.room, b.src.vector(h.room), b.src); err != nil {
			t.Fatalf("seed %d: b from a: %v", seed, err)
		}
		sameEvents(t, "a", a.src.events(h.room), union)
		sameEvents(t, "b", b.src.events(h.room), union)
		// b, serving a first, was told which authors a had more of.
		var told []string
		var calls []aheadCall
		b.src.locked(func() { calls = slices.Clone(b.src.aheads) })
		for _, c := range calls {
			if c.peer != a.id.id || c.room != h.room {
				t.Fatalf("seed %d: Ahead(%s, %s)", seed, mesh.ShortID(c.peer), c.room)
			}
			told = append(told, c.authors...)
		}
		if !slices.Equal(told, aAhead) {
			t.Fatalf("seed %d: b was told a is ahead on %d authors, want %d", seed, len(told), len(aAhead))
		}
		a.stop()
		b.stop()
	}
}

// A request the Source does not authorize is refused with its reason and
// served nothing.
func TestPullRefused(t *testing.T) {
	n := newTestNet()
	server, client := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	h := newHistory(t, "#secret", []int{5})
	h.give(server.src, map[string]int{h.authors[0].id: 5})
	server.src.locked(func() {
		server.src.authorize = func(peer, room string) error {
			if peer == client.id.id {
				return errors.New("not a member of " + room)
			}
			return nil
		}
	})
	_, err := client.s.Pull(ctxT(t), server.id.id, h.room, nil, client.src)
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "not a member of #secret") {
		t.Fatalf("Pull = %v, want ErrRefused with the reason", err)
	}
	var heads int
	server.src.locked(func() { heads = server.src.heads })
	if len(client.src.events(h.room)) != 0 || heads != 0 {
		t.Fatal("a refused request was served")
	}
}

// Requests beyond a peer's rate are refused, not served, on new streams
// as on one stream; other peers are served meanwhile.
func TestPullRateLimited(t *testing.T) {
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.RequestBurst, c.RequestRate = 3, 1e-9 }, nil)
	client, other := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	for i := range 3 {
		if _, err := client.s.Pull(ctxT(t), server.id.id, "#general", nil, client.src); err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	_, err := client.s.Pull(ctxT(t), server.id.id, "#general", nil, client.src)
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, ErrRefused) {
		t.Fatalf("fourth pull = %v, want ErrRateLimited", err)
	}
	if _, err := client.s.Index(ctxT(t), server.id.id); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("index = %v, want ErrRateLimited", err)
	}
	if _, err := other.s.Pull(ctxT(t), server.id.id, "#general", nil, other.src); err != nil {
		t.Fatalf("another peer: %v", err)
	}
}

// A flood of requests on one stream gets refusals, and the Source is
// asked only for the requests within the rate.
func TestHostileClientFlood(t *testing.T) {
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.RequestBurst, c.RequestRate = 5, 1e-9 }, nil)
	st := rawClient(t, server)
	const flood = 200
	var req []byte
	for range flood {
		req = appendFrame(req, FramePull, appendPull(nil, "#general", nil))
	}
	go st.Write(req)
	c := newConn(context.Background(), st, &server.s.cfg)
	served, refusedN := 0, 0
	for served+refusedN < flood {
		f, err := c.read(ctxDeadline)
		if err != nil {
			t.Fatalf("after %d answers and %d refusals: %v", served, refusedN, err)
		}
		switch f.Type {
		case FrameDone:
			served++
		case FrameRefuse:
			code, reason, err := parseRefuse(f.Payload)
			if err != nil || code != refuseRateLimited || !strings.Contains(reason, "rate") {
				t.Fatalf("refusal %d %q %v", code, reason, err)
			}
			refusedN++
		default:
			t.Fatalf("unexpected %v", f.Type)
		}
	}
	var heads int
	server.src.locked(func() { heads = server.src.heads })
	if served != 5 || heads != 5 {
		t.Fatalf("%d served, Heads asked %d times; want 5", served, heads)
	}
}

// Index returns a peer's memberships, each checked.
func TestIndex(t *testing.T) {
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.PageBytes = 500 }, nil) // several pages
	client := newPeer(t, n, nil, nil)
	var want []string
	for i, room := range []string{"#general", "#dev", "#random"} {
		kind := message.KindJoin
		if i == 1 {
			kind = message.KindLeave
		}
		env := &message.Envelope{Conversation: room, Seq: uint64(i + 4), Kind: kind, AuthorName: "server"}
		b, err := message.Seal(env, server.id.key)
		if err != nil {
			t.Fatal(err)
		}
		server.src.locked(func() { server.src.memberships = append(server.src.memberships, b) })
		want = append(want, room+" "+kind)
	}
	got, err := client.s.Index(ctxT(t), server.id.id)
	if err != nil {
		t.Fatal(err)
	}
	var rooms []string
	for _, env := range got {
		rooms = append(rooms, env.Conversation+" "+env.Kind)
	}
	if !slices.Equal(rooms, want) {
		t.Fatalf("index %v, want %v", rooms, want)
	}
	// A node with no rooms has an empty index.
	empty := newPeer(t, n, nil, nil)
	if got, err := client.s.Index(ctxT(t), empty.id.id); err != nil || len(got) != 0 {
		t.Fatalf("empty index: %d, %v", len(got), err)
	}
}

// Close ends a pull waiting for an answer, waits for it and for the
// served streams, and is idempotent; afterwards everything fails with
// ErrClosed.
func TestCloseEndsPullsAndHandlers(t *testing.T) {
	n := newTestNet()
	block := make(chan struct{})
	silent := newPeer(t, n, nil, func(st message.Stream) {
		<-block // reads nothing, answers nothing
		st.Close()
	})
	defer close(block)
	client := newPeer(t, n, nil, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := client.s.Pull(context.Background(), silent.id.id, "#general", nil, client.src)
		errc <- err
	}()
	waitFor(t, "the pull's stream to open", func() bool {
		client.s.mu.Lock()
		defer client.s.mu.Unlock()
		return len(client.s.streams) == 1
	})
	client.s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Pull after Close = %v, want ErrClosed", err)
	}
	client.s.Close()
	if _, err := client.s.Pull(ctxT(t), silent.id.id, "#general", nil, client.src); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pull = %v, want ErrClosed", err)
	}
	if _, err := client.s.Index(ctxT(t), silent.id.id); !errors.Is(err, ErrClosed) {
		t.Fatalf("Index = %v, want ErrClosed", err)
	}

	// A server's Close ends the streams it serves, with a CLOSE frame.
	server := newPeer(t, n, nil, nil)
	st := rawClient(t, server)
	waitFor(t, "the stream to be served", func() bool {
		server.s.mu.Lock()
		defer server.s.mu.Unlock()
		return len(server.s.streams) == 1
	})
	server.s.Close()
	f, err := ReadFrame(st)
	if err != nil || f.Type != FrameClose || string(f.Payload) != "shutting down" {
		t.Fatalf("after Close: %v %q, %v", f.Type, f.Payload, err)
	}
}

// A pull whose context ends returns promptly with the context's error.
func TestPullContextCancelled(t *testing.T) {
	n := newTestNet()
	block := make(chan struct{})
	silent := newPeer(t, n, nil, func(st message.Stream) { <-block; st.Close() })
	defer close(block)
	client := newPeer(t, n, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := client.s.Pull(ctx, silent.id.id, "#general", nil, client.src)
		errc <- err
	}()
	waitFor(t, "the pull's stream to open", func() bool {
		client.s.mu.Lock()
		defer client.s.mu.Unlock()
		return len(client.s.streams) == 1
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull = %v, want context.Canceled", err)
	}
}

// An error of the Sink ends the pull with it.
func TestPullSinkError(t *testing.T) {
	n := newTestNet()
	server, client := newPeer(t, n, nil, nil), newPeer(t, n, nil, nil)
	h := newHistory(t, "#general", []int{3})
	h.give(server.src, map[string]int{h.authors[0].id: 3})
	sentinel := errors.New("disk full")
	client.src.locked(func() { client.src.acceptErr = sentinel })
	if _, err := client.s.Pull(ctxT(t), server.id.id, h.room, nil, client.src); !errors.Is(err, sentinel) {
		t.Fatalf("Pull = %v, want the sink's error", err)
	}
}
