package roomsync

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"lanchat/message"
)

// lazySource holds a room of many events without keeping them: each
// author has n events, sealed only when a Page asks for them. It counts
// Page calls, so a test can tell that an answer never touched them.
type lazySource struct {
	*memSource // for what is not a room's events
	room       string
	authors    []identity
	n          uint64

	readMu sync.Mutex // guards reads
	reads  int        // Page calls
}

// pageReads returns how many times Page was called.
func (l *lazySource) pageReads() int {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	return l.reads
}

func (l *lazySource) Heads(ctx context.Context, room string) (Vector, error) {
	v := Vector{}
	if room == l.room {
		for _, a := range l.authors {
			v[a.id] = l.n
		}
	}
	return v, nil
}

func (l *lazySource) Page(ctx context.Context, room, author string, after uint64, limit int) ([][]byte, error) {
	l.readMu.Lock()
	l.reads++
	l.readMu.Unlock()
	for _, a := range l.authors {
		if a.id != author || room != l.room {
			continue
		}
		var out [][]byte
		for seq := after + 1; seq <= l.n && len(out) < limit; seq++ {
			env := &message.Envelope{Conversation: room, Seq: seq, Kind: message.KindText, Body: fmt.Sprint("event ", seq)}
			b, err := message.Seal(env, a.key)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}
	return nil, nil
}

// bigRoom is a server whose room holds authors × perAuthor events, and
// the vector of a client that holds them all.
func bigRoom(tb testing.TB, n *testNet, authors int, perAuthor uint64) (*testPeer, *lazySource, Vector) {
	src := &lazySource{memSource: newMemSource(), room: "#general", n: perAuthor}
	have := Vector{}
	for i := range authors {
		a := seededIdentity(tb, byte(i+1))
		src.authors = append(src.authors, a)
		have[a.id] = perAuthor
	}
	server := newPeer(tb, n, func(c *Config) { c.Source = src; c.RequestBurst = 1 << 30 }, nil)
	return server, src, have
}

// A member of a room of 1,000,000 events that lacks nothing is answered
// with a few kilobytes, and the server reads none of the events.
func TestPullNothingMissingIsCheap(t *testing.T) {
	n := newTestNet()
	server, src, have := bigRoom(t, n, 50, 20_000)
	client := newPeer(t, n, nil, nil)
	st, err := client.s.Pull(ctxT(t), server.id.id, "#general", have, client.src)
	if err != nil {
		t.Fatal(err)
	}
	wire := n.wire.Load()
	if st.Events != 0 || src.pageReads() != 0 {
		t.Fatalf("%d events came, %d pages were read", st.Events, src.pageReads())
	}
	if wire > 10<<10 {
		t.Fatalf("%d bytes exchanged (TLS handshake included), want at most 10 KB", wire)
	}
	t.Logf("nothing missing in a room of 1,000,000 events: %d bytes of frames out, %d in; %d bytes on TCP", st.BytesOut, st.BytesIn, wire)

	// Lacking the last 300 events of one author costs those events: two
	// pages read, about 300 envelopes' bytes.
	a := src.authors[7].id
	have[a] -= 300
	sink := &vectorSink{v: maps.Clone(have)}
	st, err = client.s.Pull(ctxT(t), server.id.id, "#general", have, sink)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 300 || src.pageReads() != 2 || st.Pages != 2 {
		t.Fatalf("%d events in %d pages, %d pages read; want 300 in 2", st.Events, st.Pages, src.pageReads())
	}
	if got := sink.v[a]; got != 20_000 {
		t.Fatalf("client holds %d events of the author, want 20000", got)
	}
	t.Logf("300 missing: %d bytes in", st.BytesIn)
}

// BenchmarkPullNothingMissing: a member of a room of 1,000,000 events by
// 50 authors lacking nothing asks a peer (dial and TLS handshake
// included).
func BenchmarkPullNothingMissing(b *testing.B) {
	n := newTestNet()
	server, _, have := bigRoom(b, n, 50, 20_000)
	client := newPeer(b, n, nil, nil)
	var st Stats
	b.ResetTimer()
	n.wire.Store(0)
	for range b.N {
		var err error
		st, err = client.s.Pull(context.Background(), server.id.id, "#general", have, client.src)
		if err != nil || st.Events != 0 {
			b.Fatal(err, st.Events)
		}
	}
	b.ReportMetric(float64(st.BytesIn+st.BytesOut), "bytes/pull")
	b.ReportMetric(float64(n.wire.Load())/float64(b.N), "tcp-bytes/pull")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/pull")
}

// BenchmarkPull10k: a member lacking 10,000 events (10 authors × 1,000,
// about 300 bytes each) pulls them from a peer and stores them in a map.
func BenchmarkPull10k(b *testing.B) {
	n := newTestNet()
	server := newPeer(b, n, func(c *Config) { c.RequestBurst = 1 << 30 }, nil)
	counts := make([]int, 10)
	for i := range counts {
		counts[i] = 1000
	}
	h := newHistory(b, "#general", counts)
	all := map[string]int{}
	for a, evs := range h.events {
		all[a] = len(evs)
	}
	h.give(server.src, all)
	client := newPeer(b, n, nil, nil)
	var st Stats
	b.ResetTimer()
	n.wire.Store(0)
	for range b.N {
		sink := newMemSource()
		var err error
		st, err = client.s.Pull(context.Background(), server.id.id, h.room, nil, sink)
		if err != nil || st.Events != 10_000 {
			b.Fatal(err, st.Events)
		}
	}
	b.ReportMetric(float64(st.BytesIn+st.BytesOut)/1e6, "MB/pull")
	b.ReportMetric(float64(n.wire.Load())/1e6/float64(b.N), "tcp-MB/pull")
	b.ReportMetric(float64(st.Pages), "pages/pull")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/pull")
}

// vectorSink keeps only the vector of what it accepted, insisting on
// contiguity.
type vectorSink struct {
	mu sync.Mutex // guards v
	v  Vector
}

func (s *vectorSink) Accept(ctx context.Context, from, room string, envs []*message.Envelope) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, env := range envs {
		if env.Seq != s.v[env.Author]+1 {
			return fmt.Errorf("event %d after %d", env.Seq, s.v[env.Author])
		}
		s.v[env.Author] = env.Seq
	}
	return nil
}
