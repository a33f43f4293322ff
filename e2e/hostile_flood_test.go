//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lanchat/internal/netlab"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// TestHostileConnectionFlood: one host opens hundreds of connections to
// alice's stream port and reads none of them — silent TCP, directory
// streams whose reply it never reads, message streams that write and
// never read the ACKs — and holds them. Bob's messages to alice and
// hers to him still go through quickly, both keep seeing each other,
// and alice's memory stays bounded.
func TestHostileConnectionFlood(t *testing.T) {
	// Not parallel: what it measures is how long an honest message waits
	// behind the flood on the node's CPU, and the other e2e tests' nodes
	// on the same two cores would be measured with it (a full -race run
	// once saw the flood's own setup take 94 s and an honest message 13 s;
	// alone, 0.8 s and 0.1 s). Go runs the serial tests before the
	// parallel ones, so these two have the machine to themselves.
	connectionFlood(t, false)
}

// TestHostileConnectionFloodKeyed is the same flood against a closed
// network: the attacker, without the office key, gets no stream at all,
// and the connections it holds while trying must not crowd out the
// honest ones either.
func TestHostileConnectionFloodKeyed(t *testing.T) {
	// Not parallel, for the reason above.
	connectionFlood(t, true)
}

func connectionFlood(t *testing.T, keyed bool) {
	alice, bob, attacker, args := honestPair(t, keyed)
	nodes := []*node{alice, bob}
	stopChat := chatter(t, alice, bob, 200*time.Millisecond)
	rssBefore, fdsBefore := alice.rss(), alice.fds()
	start := time.Now()
	addr := alice.ready.Addr + ":" + strconv.Itoa(alice.ready.Port)

	var (
		mu      sync.Mutex
		held    []net.Conn
		refused atomic.Int64
	)
	hold := func(c net.Conn) {
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	var wg sync.WaitGroup
	// 400 silent TCP connections.
	wg.Go(func() {
		for range 400 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := attacker.Dial(ctx, "tcp", addr)
			cancel()
			if err != nil {
				refused.Add(1)
				continue
			}
			hold(c)
		}
	})
	// 100 directory streams, each from a fresh key, never read.
	wg.Go(func() {
		for range 100 {
			s := newStranger(t, attacker, "reader")
			var st *mesh.Stream
			err := attacker.Do(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var err error
				st, err = s.d.DialAddr(ctx, addr, alice.id(), mesh.ALPNDirectory)
				return err
			})
			if err != nil {
				refused.Add(1)
				continue
			}
			hold(st)
		}
	})
	// 100 message streams, each from a fresh key, writing 64 messages of
	// 16 KiB and never reading an ACK.
	wg.Go(func() {
		body := strings.Repeat("flood ", 16<<10/6)
		for range 100 {
			s := newStranger(t, attacker, "writer")
			c, err := s.dial(alice)
			if err != nil {
				refused.Add(1)
				continue
			}
			hold(c.st)
			var batch [][]byte
			for range 64 {
				b, err := c.seal(body, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				batch = append(batch, b)
			}
			c.st.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = c.write(batch...)
		}
	})
	wg.Wait()
	t.Logf("the attacker holds %d connections (%d refused or failed) after %v", len(held), refused.Load(), time.Since(start).Round(time.Millisecond))

	// One address holds at most mesh's maxPerSource (64) connections.
	if fds := alice.fds(); fds > fdsBefore+64+16 {
		t.Errorf("alice has %d files open with the flood held, %d before", fds, fdsBefore)
	} else {
		t.Logf("alice has %d files open with the flood held, %d before", fds, fdsBefore)
	}
	// A while with everything held: the chat goes on.
	time.Sleep(10 * time.Second)
	worst, sent, err := stopChat()
	if err != nil {
		t.Fatal(err)
	}
	rssAfter := alice.rss()
	t.Logf("%d messages exchanged during the flood, slowest %v; alice's RSS %d → %d MiB",
		sent, worst.Round(time.Millisecond), rssBefore>>20, rssAfter>>20)
	if worst > 3*time.Second {
		t.Errorf("an honest message took %v to arrive during the flood", worst)
	}
	if sent < 5 {
		t.Errorf("only %d honest messages went through during the flood", sent)
	}
	if err := neverOffline(alice, nodes, start); err != nil {
		t.Error(err)
	}
	if err := neverOffline(bob, nodes, start); err != nil {
		t.Error(err)
	}
	for _, o := range nodes {
		if err := listsState(o, nodes, "available", true); err != nil {
			t.Error(err)
		}
	}
	if keyed {
		for _, m := range alice.received() {
			if m.From.ID != bob.id() {
				t.Fatalf("alice, in a closed network, took a message from %s, who lacks the key: %s", m.From.Name, m.raw[:min(len(m.raw), 300)])
			}
		}
	}
	if grown := rssAfter - rssBefore; grown > 96<<20 {
		t.Errorf("alice's RSS grew by %d MiB under a connection flood from one host", grown>>20)
	}
	// A one-shot from bob's host still gets alice's directory.
	if r := runCLI(t, bob.host, append(args, "peers", "--json")...); r.code != 0 || !strings.Contains(r.stdout, alice.id()) {
		t.Errorf("a one-shot peers during the flood: %v", r)
	}
}

// historySize is the size of a data directory's history database, its
// write-ahead log included.
func historySize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, f := range []string{"history.db", "history.db-wal"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err == nil {
			n += fi.Size()
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return n
}

// TestHostileDiskFill: fresh keys on one host send 60 KB messages as fast
// as alice takes them. Each stranger's messages are refused, with the
// quota's reason, once it has stored its quota (16 MiB of disk); alice's
// history file grows by no more than the strangers' quotas, while bob,
// whom she knows, is still stored.
func TestHostileDiskFill(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts[:2], "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	attacker := lab.Hosts[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	waitFor(t, seeTimeout, func() error { return listsState(alice, nodes, "available", true) })
	stopChat := chatter(t, alice, bob, 300*time.Millisecond)
	sizeBefore := historySize(t, alice.dataDir)
	rssBefore := alice.rss()

	const (
		strangers     = 2
		quotaStranger = 16 << 20 // message/chat's quotaStranger, of disk (store.DiskCost)
		bodyLen       = 60 << 10
	)
	var stored, refusedQuota, charged atomic.Int64
	var overWG, doneWG sync.WaitGroup
	phase2 := make(chan struct{}) // closed once every stranger is over its quota
	fail := func(format string, args ...any) { t.Errorf(format, args...) }
	start := time.Now()
	overWG.Add(strangers)
	for i := range strangers {
		doneWG.Go(func() {
			reachedOver := false
			defer func() {
				if !reachedOver {
					overWG.Done()
				}
			}()
			s := newStranger(t, attacker, fmt.Sprintf("filler%d", i))
			c, err := s.dial(alice)
			if err != nil {
				fail("filler%d: %v", i, err)
				return
			}
			defer c.Close()
			// ACKs are read as they come, so the writer never waits on
			// them.
			over := make(chan struct{})
			var mine atomic.Int64      // this stranger's refusals for the quota
			var sealedLen atomic.Int64 // of its messages
			acks := make(chan error, 1)
			go func() {
				var once sync.Once
				for {
					a, err := c.readAck()
					if err != nil {
						acks <- err
						return
					}
					switch {
					case a.Status == message.AckOK:
						stored.Add(1)
						charged.Add(store.DiskCost(int(sealedLen.Load())))
					case a.Status == message.AckRejected && strings.Contains(a.Reason, "keeps no more messages"):
						refusedQuota.Add(1)
						mine.Add(1)
						once.Do(func() { close(over) })
					default:
						acks <- fmt.Errorf("ack %v %q", a.Status, a.Reason)
						return
					}
				}
			}()
			words := bodyLen / 9
			batch := func() bool {
				var b [][]byte
				for range 16 {
					var text []byte
					for range words {
						text = fmt.Appendf(text, "%08x ", randomWord())
					}
					sealed, err := c.seal(string(text), time.Now())
					if err != nil {
						fail("filler%d: %v", i, err)
						return false
					}
					sealedLen.Store(int64(len(sealed))) // all of one length, give or take a byte
					b = append(b, sealed)
				}
				if err := c.write(b...); err != nil {
					fail("filler%d: write: %v", i, err)
					return false
				}
				return true
			}
			// Up to a little over the quota, until the first refusal.
		fill:
			for sent := 0; sent < quotaStranger/bodyLen+64; sent += 16 {
				select {
				case <-over:
					break fill
				case err := <-acks:
					fail("filler%d: %v", i, err)
					return
				default:
				}
				if !batch() {
					return
				}
			}
			select {
			case <-over:
			case err := <-acks:
				fail("filler%d: %v", i, err)
				return
			case <-time.After(20 * time.Second):
				fail("filler%d: sent past its quota and was never refused for it", i)
				return
			}
			// Everything in flight is answered before the second phase.
			time.Sleep(500 * time.Millisecond)
			reachedOver = true
			overWG.Done()
			<-phase2
			// Over the quota: 64 more, every one refused.
			before := mine.Load()
			for range 4 {
				if !batch() {
					return
				}
			}
			deadline := time.After(20 * time.Second)
			for mine.Load() < before+64 {
				select {
				case err := <-acks:
					fail("filler%d: %v", i, err)
					return
				case <-deadline:
					fail("filler%d: %d of 64 messages over its quota refused", i, mine.Load()-before)
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
	overWG.Wait()
	took := time.Since(start)
	storedAtOver := stored.Load()
	sizeAtOver := historySize(t, alice.dataDir)
	close(phase2)
	doneWG.Wait()
	worst, sent, err := stopChat()
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	size := historySize(t, alice.dataDir)
	grown := size - sizeBefore
	t.Logf("%d strangers: %d messages stored (%d MiB charged) in %v, then %d refused for the quota; history and its log grew %d MiB (%d after the refusals began); %d honest messages, slowest %v; alice's RSS %d → %d MiB",
		strangers, stored.Load(), charged.Load()>>20, took.Round(time.Millisecond), refusedQuota.Load(), grown>>20, (size-sizeAtOver)>>20,
		sent, worst.Round(time.Millisecond), rssBefore>>20, alice.rss()>>20)
	// Memory: SQLite's page caches (16 MiB for the writer) and the frames
	// in flight, whatever was sent (measured: +47 MiB).
	if grown := alice.rss() - rssBefore; grown > 128<<20 {
		t.Errorf("alice's RSS grew by %d MiB during the fill", grown>>20)
	}
	if stored.Load() != storedAtOver {
		t.Errorf("%d more messages stored after every stranger was over its quota", stored.Load()-storedAtOver)
	}
	// Past the quota the history stops growing: what is left is the
	// honest chat and the log's checkpoints.
	if d := size - sizeAtOver; d > 4<<20 {
		t.Errorf("history grew by %d MiB after every stranger was over its quota", d>>20)
	}
	// What the quota counts is what a message costs on disk (its text
	// beside its envelope, its words in the search index): the charge is
	// at most the quotas, and the history, once alice stops and its log
	// is checkpointed into it, grows by no more than that (and the
	// honest chat).
	if c := charged.Load(); c > strangers*quotaStranger {
		t.Errorf("%d MiB charged to %d strangers, over their quotas", c>>20, strangers)
	}
	if sent < 5 {
		t.Errorf("only %d honest messages during the fill", sent)
	}
	for _, o := range nodes {
		if err := neverOffline(o, nodes, start); err != nil {
			t.Error(err)
		}
	}
	// Alice still stores what bob sends.
	if r := bob.cli("send", "alice", "after the fill"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitMessage(t, alice, bob.id(), "after the fill")
	if r := alice.cli("history", "bob", "--limit", "1", "--json"); r.code != 0 || !strings.Contains(r.stdout, "after the fill") {
		t.Errorf("alice's history with bob: %v", r)
	}
	if code := alice.Stop(); code != 0 {
		t.Fatalf("alice exited %d", code)
	}
	dbSize := historySize(t, alice.dataDir) // the log is folded in and gone
	t.Logf("alice stopped: history %d MiB, %d MiB more than before the fill, strangers' quotas %d MiB",
		dbSize>>20, (dbSize-sizeBefore)>>20, strangers*quotaStranger>>20)
	if most := int64(strangers*quotaStranger + 4<<20); dbSize-sizeBefore > most {
		t.Errorf("history grew by %d MiB under %d strangers, want at most %d MiB", (dbSize-sizeBefore)>>20, strangers, most>>20)
	}
}

var wordCounter atomic.Uint32

// randomWord is a different word each call: distinct words, as an
// attacker would send to make the full-text index grow most.
func randomWord() uint32 { return wordCounter.Add(0x9e3779b1) }

// TestHostileClockAhead: a stranger's message stamped an hour ahead is
// kept and shown at its arrival, with the time it claimed; alice's clock
// does not follow it, so her next message to bob is stamped at the real
// time.
func TestHostileClockAhead(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts[:2], "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	waitSees(t, seeTimeout, nodes, nodes, "available")

	s := newStranger(t, lab.Hosts[2], "hasty")
	ahead := time.Now().Add(time.Hour)
	sentAt := time.Now()
	ack, err := s.sendOnce(alice, "from the future", ahead)
	if err != nil || ack.Status != message.AckOK {
		t.Fatalf("send: %+v %v", ack, err)
	}
	ev := waitMessage(t, alice, s.id.ID, "from the future")
	var got struct {
		Time        time.Time  `json:"time"`
		ClaimedTime *time.Time `json:"claimed_time"`
	}
	if err := json.Unmarshal([]byte(ev.raw), &got); err != nil {
		t.Fatal(err)
	}
	if d := got.Time.Sub(sentAt); d < -time.Second || d > 5*time.Second || got.ClaimedTime == nil || !got.ClaimedTime.Equal(ahead) {
		t.Errorf("the event shows time %v, claimed %v; want the arrival (about %v) and the claimed %v", got.Time, got.ClaimedTime, sentAt, ahead)
	}
	r := alice.cli("history", s.id.ID, "--json")
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	var hist []struct {
		Text        string     `json:"text"`
		Time        time.Time  `json:"time"`
		ClaimedTime *time.Time `json:"claimed_time"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil || len(hist) != 1 {
		t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	if h := hist[0]; h.Text != "from the future" || h.ClaimedTime == nil || !h.ClaimedTime.Equal(ahead) || h.Time.Sub(sentAt) > 5*time.Second || h.Time.Before(sentAt.Add(-time.Second)) {
		t.Errorf("history entry %+v; want at the arrival (about %v), claimed %v", h, sentAt, ahead)
	}

	// Alice's and bob's own next messages are stamped at the real time.
	for _, p := range [][2]*node{{alice, bob}, {bob, alice}} {
		from, to := p[0], p[1]
		text := "stamped now by " + from.name
		before := time.Now()
		if r := from.cli("send", to.name, text); r.code != 0 {
			t.Fatalf("%v", r)
		}
		m := waitMessage(t, to, from.id(), text)
		mt, err := time.Parse(time.RFC3339Nano, m.Time)
		if err != nil {
			t.Fatal(err)
		}
		if d := mt.Sub(before); d < -time.Second || d > 5*time.Second {
			t.Errorf("%s's message after the one from the future is stamped %v, %v from when it was sent", from, mt, d)
		}
	}
}

// TestHostilePinnedFill: a host joins the LAN under a name nobody holds,
// so alice pins it on first use — trust on first use cannot tell it from
// a new colleague — and then fills her disk with its key. A pin guards
// the name, not the disk: it is refused at a stranger's quota (16 MiB of
// disk), with the quota's reason, while still pinned; bob is served.
func TestHostilePinnedFill(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	nodes := startNodes(t, lab.Hosts, "alice", "bob", "newcomer")
	alice, bob, newcomer := nodes[0], nodes[1], nodes[2]
	waitSees(t, seeTimeout, nodes, nodes, "available")
	waitFor(t, seeTimeout, func() error {
		ps, err := alice.peers()
		if err != nil {
			return err
		}
		if es := entries(ps, newcomer.id()); len(es) != 1 || !es[0].Trusted {
			return fmt.Errorf("alice has not pinned the newcomer on first use: %+v", es)
		}
		return nil
	})
	// The newcomer's own key, used outside its node: what a hostile host
	// holding a pinned identity can send.
	key, err := mesh.LoadOrCreateIdentity(newcomer.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := mesh.NewDialer(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &stranger{id: key, d: d, name: "newcomer", host: lab.Hosts[2]}
	c, err := s.dial(alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const quotaStranger, bodyLen = 16 << 20, 60 << 10
	var charged int64
	stored, refused := 0, 0
	for sent := 0; sent < 2*quotaStranger/bodyLen && refused == 0; sent += 8 {
		var batch [][]byte
		for range 8 {
			var text []byte
			for len(text) < bodyLen {
				text = fmt.Appendf(text, "%08x ", randomWord())
			}
			b, err := c.seal(string(text), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, b)
		}
		if err := c.write(batch...); err != nil {
			t.Fatalf("write after %d stored: %v", stored, err)
		}
		for _, b := range batch {
			a, err := c.readAck()
			if err != nil {
				t.Fatalf("ack after %d stored: %v", stored, err)
			}
			switch {
			case a.Status == message.AckOK:
				stored++
				charged += store.DiskCost(len(b))
			case a.Status == message.AckRejected && strings.Contains(a.Reason, "keeps no more messages"):
				refused++
			default:
				t.Fatalf("ack %v %q after %d stored", a.Status, a.Reason, stored)
			}
		}
	}
	if refused == 0 || charged > quotaStranger {
		t.Fatalf("a peer pinned on first use stored %d messages (%d bytes of disk charged) with %d refused: want refused within a stranger's %d", stored, charged, refused, quotaStranger)
	}
	t.Logf("pinned newcomer: %d messages stored (%.1f MiB charged), then refused", stored, float64(charged)/(1<<20))
	ps, err := alice.peers()
	if err != nil {
		t.Fatal(err)
	}
	if es := entries(ps, newcomer.id()); len(es) != 1 || !es[0].Trusted {
		t.Fatalf("the newcomer is no longer pinned: %+v", es)
	}
	// bob is still stored, and answering the newcomer lifts its cap.
	if res := bob.cli("send", "alice", "still here"); res.code != 0 {
		t.Fatalf("bob's message to alice: %s", res)
	}
	waitFor(t, seeTimeout, func() error {
		if !hasMessage(alice, bob.id(), "still here") {
			return fmt.Errorf("alice does not have bob's message")
		}
		return nil
	})
	if res := alice.cli("send", newcomer.id(), "who are you?"); res.code != 0 {
		t.Fatalf("alice answers the newcomer: %s", res)
	}
	a, err := c.send("thanks for answering", time.Now())
	if err != nil || a.Status != message.AckOK {
		t.Fatalf("after alice wrote to it: %v %q %v", a.Status, a.Reason, err)
	}
}
