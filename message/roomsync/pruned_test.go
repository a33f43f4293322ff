package roomsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"lanchat/message"
)

// retention seals a room.retention event of author in room.
func retention(t testing.TB, author identity, room string, seq uint64) []byte {
	t.Helper()
	env := &message.Envelope{Conversation: room, Seq: seq, Kind: message.KindRetention, Body: "3600",
		Time: message.Timestamp{Wall: 1_700_000_000_000_000_000 + int64(seq)}}
	b, err := message.Seal(env, author.key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// prunedSource holds, of each author, the events from a floor up to its
// head, as a member that pruned a room does, and the room's settings.
type prunedSource struct {
	memSource
	state [][]byte

	fmu   sync.Mutex                    // guards floor and prune
	floor map[string]uint64             // author → the first seq held
	prune func(floor map[string]uint64) // when set, called before each Page: a prune while serving
}

var _ StateSource = (*prunedSource)(nil)

func (p *prunedSource) State(ctx context.Context, room string) ([][]byte, error) { return p.state, nil }

func (p *prunedSource) Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error) {
	p.fmu.Lock()
	if p.prune != nil {
		p.prune(p.floor)
	}
	f := p.floor[author]
	p.fmu.Unlock()
	return p.memSource.Page(ctx, room, author, max(after, f-1), limit)
}

// skipSink records what it is handed, as seqs per call, taking skips.
type skipSink struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (s *skipSink) Accept(ctx context.Context, from, room string, envs []*message.Envelope) error {
	var seqs []string
	for _, e := range envs {
		seqs = append(seqs, fmt.Sprintf("%s:%d", e.Kind, e.Seq))
	}
	s.mu.Lock()
	s.calls = append(s.calls, fmt.Sprint(seqs))
	s.mu.Unlock()
	return nil
}

// A server that pruned an author's events up to a witness sends the
// room's settings first, then that author's events from the witness on,
// and the others' whole: the client's sink sees the skip and judges it.
func TestPullFromAPrunedServer(t *testing.T) {
	const room = "#ops"
	h := newHistory(t, room, []int{10, 3})
	a, b := h.authors[0], h.authors[1]
	src := &prunedSource{memSource: *newMemSource(), floor: map[string]uint64{a.id: 6, b.id: 1}}
	h.give(&src.memSource, map[string]int{a.id: 10, b.id: 3})
	src.state = [][]byte{retention(t, b, room, 4)}
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.Source = src; c.PageEvents = 3 }, nil)
	client := newPeer(t, n, nil, nil)
	want := map[string][]string{ // by what the client holds of a
		"nothing":  {"[room.retention:4]", "[text:6 text:7 text:8]", "[text:9 text:10]", "[text:1 text:2 text:3]"},
		"a's 1..2": {"[room.retention:4]", "[text:6 text:7 text:8]", "[text:9 text:10]", "[text:1 text:2 text:3]"},
		"a's 1..7": {"[room.retention:4]", "[text:8 text:9 text:10]", "[text:1 text:2 text:3]"},
	}
	for name, have := range map[string]Vector{"nothing": nil, "a's 1..2": {a.id: 2}, "a's 1..7": {a.id: 7}} {
		sink := &skipSink{}
		st, err := client.s.Pull(ctxT(t), server.id.id, room, have, sink)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The pages of a and b come in the order of their ids.
		got, w := sink.calls, want[name]
		if a.id > b.id {
			w = append(append([]string{w[0]}, w[len(w)-1]), w[1:len(w)-1]...)
		}
		if !slices.Equal(got, w) {
			t.Fatalf("%s: sink got %q, want %q", name, got, w)
		}
		if wantEvents := len(w) - 1; st.Pages != wantEvents {
			t.Fatalf("%s: %d pages counted, want %d", name, st.Pages, wantEvents)
		}
	}
	// A client missing nothing is sent no settings either: DONE alone.
	sink := &skipSink{}
	st, err := client.s.Pull(ctxT(t), server.id.id, room, Vector{a.id: 10, b.id: 3}, sink)
	if err != nil || len(sink.calls) != 0 || st.BytesIn != FrameHeaderLen {
		t.Fatalf("up to date: %v, sink got %q, %d bytes in", err, sink.calls, st.BytesIn)
	}
}

// A prune while the server answers takes events it announced: the server
// ends the answer with REFUSE (unavailable) rather than send a page that
// skips in the middle, and what the client took stays.
func TestPruneWhileServing(t *testing.T) {
	const room = "#ops"
	h := newHistory(t, room, []int{10})
	a := h.authors[0]
	src := &prunedSource{memSource: *newMemSource(), floor: map[string]uint64{a.id: 1}}
	h.give(&src.memSource, map[string]int{a.id: 10})
	calls := 0
	src.prune = func(floor map[string]uint64) {
		if calls++; calls == 2 {
			floor[a.id] = 9
		}
	}
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.Source = src; c.PageEvents = 3 }, nil)
	client := newPeer(t, n, nil, nil)
	sink := &skipSink{}
	_, err := client.s.Pull(ctxT(t), server.id.id, room, nil, sink)
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Pull = %v, want ErrRefused (not a protocol violation)", err)
	}
	if !slices.Equal(sink.calls, []string{"[text:1 text:2 text:3]"}) {
		t.Fatalf("sink got %q", sink.calls)
	}
}
