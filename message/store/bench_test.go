package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lanchat/message"
)

// Speed and size figures. The big ones run only under -bench:
//
//	go test -run '^$' -bench . -benchtime 1x ./message/store/    # everything once
//	go test -run '^$' -bench AddReceived ./message/store/
//
// BenchmarkHistory1M builds a database of a million messages first (about
// a minute) and is skipped under -short.

// benchPeople are the authors of benchmark messages.
var benchPeople = sync.OnceValue(func() []person {
	ps := make([]person, 20)
	for i := range ps {
		ps[i] = newPerson(fmt.Sprint("peer", i), byte(10+i))
	}
	return ps
})

// vocabulary is a made-up language: common words are short, like in
// English, and a Zipf distribution picks them. Some real words are planted
// at known frequencies for the search benchmarks.
type vocabulary struct {
	words []string
	zipf  *rand.Zipf
	rng   *rand.Rand
}

func newVocabulary(seed uint64) *vocabulary {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := &vocabulary{rng: rng, zipf: rand.NewZipf(rng, 1.1, 2, 19999)}
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	seen := map[string]bool{"lunch": true, "zanzibar": true, "the": true}
	v.words = append(v.words, "the")
	for len(v.words) < 20000 {
		n := 2 + len(v.words)/3000 + rng.IntN(4)
		var b strings.Builder
		for range n {
			b.WriteByte(letters[min(len(letters)-1, int(rng.ExpFloat64()*6))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			v.words = append(v.words, w)
		}
	}
	return v
}

// sentence is 3 to 15 words; "lunch" is in about 1% of sentences and
// "zanzibar" in about 0.01%.
func (v *vocabulary) sentence() string {
	n := 3 + v.rng.IntN(13)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = v.words[v.zipf.Uint64()]
	}
	switch r := v.rng.IntN(10000); {
	case r < 100:
		ws[v.rng.IntN(n)] = "lunch"
	case r == 100:
		ws[v.rng.IntN(n)] = "zanzibar"
	}
	return strings.Join(ws, " ")
}

// benchEnvelopes seals n received messages (to alice from the 20 bench
// people) spread evenly over span ending now, using both cores.
func benchEnvelopes(b *testing.B, n int, span time.Duration, seed uint64) []*message.Envelope {
	b.Helper()
	ps := benchPeople()
	envs := make([]*message.Envelope, n)
	end := time.Now().UnixNano()
	step := int64(span) / int64(max(n, 1))
	var wg sync.WaitGroup
	const workers = 2
	for w := range workers {
		wg.Go(func() {
			v := newVocabulary(seed + uint64(w))
			for i := w; i < n; i += workers {
				p := ps[v.rng.IntN(len(ps))]
				ts := message.Timestamp{Wall: end - int64(n-i)*step + v.rng.Int64N(max(step, 1))}
				e := &message.Envelope{AuthorName: p.name, To: alice.id, Time: ts, Kind: message.KindText, Body: v.sentence()}
				if _, err := message.Seal(e, p.key); err != nil {
					panic(err)
				}
				envs[i] = e
			}
		})
	}
	wg.Wait()
	return envs
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter reports throughput and CPU cost per message: on a shared machine
// the CPU figure is the steadier one.
type meter struct {
	start time.Time
	cpu   time.Duration
}

func startMeter() meter { return meter{time.Now(), cpuTime()} }

func (m meter) report(b *testing.B, msgs int) {
	b.ReportMetric(float64(msgs)/time.Since(m.start).Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime()-m.cpu).Microseconds())/float64(msgs), "cpu-µs/msg")
}

// pool hands out pre-sealed envelopes to benchmark loops.
type pool struct {
	envs []*message.Envelope
	next atomic.Int64
}

func (p *pool) get() *message.Envelope { return p.envs[p.next.Add(1)-1] }

func benchOpen(b *testing.B, sync string) *Store {
	b.Helper()
	opt := DefaultOptions()
	opt.Synchronous = sync
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAddReceived measures durable inserts: many concurrent callers
// sharing group commits; one caller at a time (each call waits for its
// own fsync); one caller handing over 100 envelopes per call.
func BenchmarkAddReceived(b *testing.B) {
	ctx := context.Background()
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, callers := range []int{64, 512} {
			b.Run(fmt.Sprintf("concurrent-%d/%s", callers, sync), func(b *testing.B) {
				s := benchOpen(b, sync)
				p := &pool{envs: benchEnvelopes(b, b.N, time.Hour, 1)}
				b.SetParallelism(callers / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				m := startMeter()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.AddReceived(ctx, p.get()); err != nil {
							b.Error(err)
							return
						}
					}
				})
				m.report(b, b.N)
			})
		}
		b.Run("sequential/"+sync, func(b *testing.B) {
			s := benchOpen(b, sync)
			p := &pool{envs: benchEnvelopes(b, b.N, time.Hour, 2)}
			b.ResetTimer()
			m := startMeter()
			for range b.N {
				if _, err := s.AddReceived(ctx, p.get()); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b, b.N)
		})
		b.Run("batch-100/"+sync, func(b *testing.B) {
			s := benchOpen(b, sync)
			envs := benchEnvelopes(b, b.N, time.Hour, 3)
			b.ResetTimer()
			m := startMeter()
			for chunk := range chunks(envs, 100) {
				if _, err := s.AddReceivedBatch(ctx, chunk); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b, b.N)
		})
	}
}

// fileSize is the size of the database with its log, as a user's disk
// sees it.
func fileSize(b *testing.B, path string) int64 {
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// BenchmarkSize100k stores 100,000 messages (3 to 15 words, 55 bytes of
// text on average) and reports the database's size, closed (checkpointed).
func BenchmarkSize100k(b *testing.B) {
	if testing.Short() {
		b.Skip("stores 100,000 messages")
	}
	ctx := context.Background()
	envs := benchEnvelopes(b, 100_000, 30*24*time.Hour, 4)
	var text int
	for _, e := range envs {
		text += len(e.Body)
	}
	b.ResetTimer()
	for range b.N {
		path := filepath.Join(b.TempDir(), "history.db")
		s, err := Open(path, DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		for chunk := range chunks(envs, 1000) {
			if _, err := s.AddReceivedBatch(ctx, chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		size := fileSize(b, path)
		logSpace(b, path)
		b.ReportMetric(float64(size), "bytes/100k-msgs")
		b.ReportMetric(float64(size)/float64(len(envs)), "bytes/msg")
		b.ReportMetric(float64(text)/float64(len(envs)), "text-bytes/msg")
		b.ReportMetric(float64(len(envs[0].Sealed())-len(envs[0].Body)), "envelope-overhead-bytes")
	}
}

// BenchmarkOutbox10000 fetches 10,000 queued messages to one peer (among
// 30,000 outgoing to three peers, half of them delivered).
func BenchmarkOutbox10000(b *testing.B) {
	ctx := context.Background()
	s := benchOpen(b, "NORMAL")
	v := newVocabulary(5)
	clock := message.NewClock(nil)
	var envs []*message.Envelope
	for i := range 40_000 {
		to := []person{bob, carol, bob, benchPeople()[0]}[i%4]
		e := &message.Envelope{AuthorName: "alice", To: to.id, Time: clock.Now(), Kind: message.KindText, Body: v.sentence()}
		if _, err := message.Seal(e, alice.key); err != nil {
			b.Fatal(err)
		}
		envs = append(envs, e)
	}
	// Queue them from 16 goroutines (group commit), then deliver every
	// other one of bob's.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(envs); i += 16 {
				if err := s.AddOutgoing(ctx, envs[i]); err != nil {
					b.Error(err)
					return
				}
				if i%4 == 2 {
					if _, err := s.SetState(ctx, envs[i].ID, Delivered); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		recs, err := s.Outbox(ctx, bob.id, 10_000)
		if err != nil || len(recs) != 10_000 {
			b.Fatal(len(recs), err)
		}
	}
}

// load stores n messages between alice and the 20 bench people (a third
// written by alice), spread over a year, sealing on one core and storing
// on the other.
func load(b *testing.B, s *Store, n int) {
	b.Helper()
	ctx := context.Background()
	ps := benchPeople()
	type chunk struct {
		envs     []*message.Envelope
		outgoing bool
	}
	ch := make(chan chunk, 4)
	go func() {
		defer close(ch)
		v := newVocabulary(7)
		end := time.Now().UnixNano()
		step := int64(365*24*time.Hour) / int64(n)
		const size = 2000
		for i := 0; i < n; i += size {
			in, out := chunk{}, chunk{outgoing: true}
			for j := i; j < min(i+size, n); j++ {
				p := ps[v.rng.IntN(len(ps))]
				ts := message.Timestamp{Wall: end - int64(n-j)*step + v.rng.Int64N(step)}
				e := &message.Envelope{AuthorName: p.name, To: alice.id, Time: ts, Kind: message.KindText, Body: v.sentence()}
				key := p.key
				if v.rng.IntN(3) == 0 {
					e.AuthorName, e.To, key = "alice", p.id, alice.key
				}
				if _, err := message.Seal(e, key); err != nil {
					panic(err)
				}
				if key.Equal(alice.key) {
					out.envs = append(out.envs, e)
				} else {
					in.envs = append(in.envs, e)
				}
			}
			ch <- in
			ch <- out
		}
	}()
	for c := range ch {
		if _, err := s.add(ctx, c.envs, nil, c.outgoing); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistory1M searches and reads a history of a million messages.
// "the" is in most messages, "lunch" in 1%, "zanzibar" in 0.01%.
func BenchmarkHistory1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a database of a million messages")
	}
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "history.db")
	s, err := Open(path, DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	load(b, s, n)
	ctx := context.Background()
	// All but the newest 500 outgoing messages were delivered long ago.
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.Exec(`UPDATE messages SET state = 2 WHERE outgoing = 1 AND state < 2 AND seq NOT IN
			(SELECT seq FROM messages WHERE outgoing = 1 ORDER BY seq DESC LIMIT 500)`)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	// That update filled the log; empty it, as the next checkpoint would,
	// to see the database's own size. (The writer is idle: its connection
	// is free.)
	if _, err := s.wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	logSpace(b, path)
	size := fileSize(b, path)
	b.Logf("stored %d messages in %v (%.0f/s); database %d MB, %d bytes/msg", n, took.Round(time.Second),
		n/took.Seconds(), size>>20, size/n)
	peer := benchPeople()[3].id
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"search-common-word", Query{Search: "the", Limit: 50}},
		{"search-1%-word", Query{Search: "lunch", Limit: 50}},
		{"search-rare-word", Query{Search: "zanzibar", Limit: 50}},
		{"search-no-match", Query{Search: "qqqqqqq", Limit: 50}},
		{"search-two-words", Query{Search: "lunch the", Limit: 50}},
		{"search-rare-pair", Query{Search: "zanzibar lunch", Limit: 50}},
		{"search-prefix", Query{Search: "lun*", Limit: 50}},
		{"search-in-one-conversation", Query{Search: "lunch", Peer: peer, Limit: 50}},
		{"search-last-week", Query{Search: "lunch", Since: time.Now().Add(-7 * 24 * time.Hour), Limit: 50}},
		{"history-all", Query{Limit: 50}},
		{"history-one-conversation", Query{Peer: peer, Limit: 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var got int
			for range b.N {
				recs, err := s.History(ctx, c.q)
				if err != nil {
					b.Fatal(err)
				}
				got = len(recs)
			}
			b.ReportMetric(float64(got), "results")
		})
	}
	b.Run("count", func(b *testing.B) {
		for range b.N {
			if _, err := s.Count(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("outbox-summary", func(b *testing.B) {
		for range b.N {
			if _, err := s.OutboxSummary(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What a one-shot "lanchat history --search" pays when no node runs:
	// open (with the checks), search with cold connection caches, close.
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("open-search-close", func(b *testing.B) {
		for range b.N {
			s2, err := Open(path, DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s2.History(ctx, Query{Search: "lunch", Limit: 50}); err != nil {
				b.Fatal(err)
			}
			if err := s2.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// logSpace logs how the database's pages are used, per table and index.
func logSpace(b *testing.B, path string) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, count(*), sum(pgsize), sum(unused) FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC`)
	if err != nil {
		b.Logf("no dbstat: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var pages, size, unused int64
		rows.Scan(&name, &pages, &size, &unused)
		b.Logf("%-28s %8d pages %6d MB (%2d%% unused)", name, pages, size>>20, 100*unused/max(size, 1))
	}
}

// BenchmarkOutboxCheck: what the chat outbox's one-second retry check
// costs, on a history of 1,000 messages with 3 waiting. It used to run
// the summary query every second, parsed and planned each time
// ("unprepared", as before); now it asks ExternalVersion and runs
// PendingPeers (prepared once) only when that moved or an online peer has
// something waiting. cpu-µs/op is the process's CPU time per call, the
// figure a shared machine does not blur.
//
//	go test -run '^$' -bench OutboxCheck -benchtime 3000x ./message/store/
func BenchmarkOutboxCheck(b *testing.B) {
	ctx := context.Background()
	opt := DefaultOptions()
	opt.Synchronous = "NORMAL"
	s := openAt(b, filepath.Join(b.TempDir(), "history.db"), opt)
	ps := benchPeople()
	var envs []*message.Envelope
	for i := range 1000 {
		p := ps[i%len(ps)]
		envs = append(envs, p.msg(b, alice, at(float64(i)), fmt.Sprint("received ", i)))
	}
	if _, err := s.AddReceivedBatch(ctx, envs); err != nil {
		b.Fatal(err)
	}
	for i := range 3 {
		if err := s.AddOutgoing(ctx, alice.msg(b, ps[i], at(float64(2000+i)), "waiting")); err != nil {
			b.Fatal(err)
		}
	}
	run := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
	run("unprepared", func() error {
		rows, err := s.rdb.QueryContext(ctx, outboxSummarySQL)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n != 3 {
			return fmt.Errorf("%d peers waited on, want 3", n)
		}
		return rows.Err()
	})
	run("PendingPeers", func() error {
		p, err := s.PendingPeers(ctx)
		if err == nil && len(p) != 3 {
			err = fmt.Errorf("PendingPeers = %v, want 3", p)
		}
		return err
	})
	run("ExternalVersion", func() error {
		_, err := s.ExternalVersion(ctx)
		return err
	})
}
