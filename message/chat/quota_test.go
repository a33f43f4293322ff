package chat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// setQuotas shrinks the quotas of f's service for a test.
func setQuotas(f *fixture, stranger, strangers int64) {
	q := f.svc.quota
	q.mu.Lock()
	q.stranger, q.strangers = stranger, strangers
	q.mu.Unlock()
}

// costOf is what a message of body from a stranger is charged.
func costOf(t *testing.T, body string) int64 { return costFrom(t, newParty(t, "x"), body) }

// costFrom is what a message of body from p is charged (its name is in
// the envelope).
func costFrom(t *testing.T, p party, body string) int64 {
	return store.DiskCost(len(sealFrom(t, p, newParty(t, "y").id, message.KindText, body).Sealed()))
}

// A stranger fills its quota and is refused, with a reason its node can
// show; once we write to it, it is no stranger and is taken again. Many
// strangers together stop at the strangers' total, as do those pinned on
// first use, while a contact the person trusted is still served.
func TestStrangersCannotFillTheDisk(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	body := strings.Repeat("x", 8<<10)
	cost := costOf(t, body)
	setQuotas(f, 4*cost+cost/2, 12*cost+cost/2) // 4 messages each, 12 for all strangers
	send := func(p party) error {
		return f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, p, f.me.id, message.KindText, body)})[0]
	}
	mallory := newParty(t, "mallory")
	var stored int
	var err error
	for range 20 {
		if err = send(mallory); err != nil {
			break
		}
		stored++
	}
	if !errors.Is(err, errOverQuota) || stored != 4 {
		t.Fatalf("a stranger stored %d messages of 8 KiB under a quota of 4.5, then %v", stored, err)
	}
	// We answer mallory: now a correspondent, with the large quota.
	f.pres.set(mallory.id, "mallory", mesh.Available)
	if _, err := f.svc.Send(ctx, mallory.id, "who is this?", false); err != nil {
		t.Fatal(err)
	}
	if err := send(mallory); err != nil {
		t.Fatalf("after we wrote to it: %v", err)
	}

	// Fresh keys, each under its own quota, stop at the total.
	refused := 0
	for range 30 {
		if errors.Is(send(newParty(t, "fresh")), errOverQuota) {
			refused++
		}
	}
	// mallory's four left the strangers' total when we wrote to her.
	if refused != 30-12 {
		t.Fatalf("30 fresh keys of 8 KiB each under a total of 12.5: %d refused, want 18", refused)
	}
	// A verified newcomer under a free name is pinned for it, but a pin
	// is not the person's trust: still a stranger, still over the total.
	carol := newParty(t, "carol")
	f.svc.Saw(verified(carol, "carol"))
	if k, ok := f.svc.contacts.get(carol.id); !ok || !k.Trusted {
		t.Fatalf("carol not pinned on first use: %+v", k)
	}
	if err := send(carol); !errors.Is(err, errOverQuota) {
		t.Fatalf("a peer pinned on first use while strangers are over their total: %v, want refused", err)
	}
	if _, err := f.svc.Trust(carol.id); err != nil {
		t.Fatal(err)
	}
	if err := send(carol); err != nil {
		t.Fatalf("a trusted contact refused while strangers are over quota: %v", err)
	}
	// A duplicate costs nothing.
	dup := sealFrom(t, carol, f.me.id, message.KindText, "once")
	for range 3 {
		if err := f.svc.DeliverBatch(ctx, []*message.Envelope{dup})[0]; err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := f.st.PeerUsage(ctx, carol.id)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.quota.mu.Lock()
	got := f.svc.quota.peers[carol.id].bytes
	f.svc.quota.mu.Unlock()
	if got != n {
		t.Fatalf("carol's usage %d, the history holds %d", got, n)
	}
}

// At start the strangers' total includes what strangers stored before.
func TestStrangersTotalSurvivesARestart(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	body := strings.Repeat("y", 8<<10)
	cost := costOf(t, body)
	setQuotas(f, 5*cost, 3*cost+cost/2)
	for range 3 {
		if err := f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, newParty(t, "s"), f.me.id, message.KindText, body)})[0]; err != nil {
			t.Fatal(err)
		}
	}
	q := newQuota(f.svc) // as a restarted service builds it
	q.stranger, q.strangers = 5*cost, 3*cost+cost/2
	q.loadTotals(ctx)
	if !q.totalled || q.strangersN != 3*cost {
		t.Fatalf("strangers' total after a restart %d (totalled %v), want %d", q.strangersN, q.totalled, 3*cost)
	}
	if err := q.reserve(ctx, sealFrom(t, newParty(t, "s"), f.me.id, message.KindText, body)); !errors.Is(err, errOverQuota) {
		t.Fatalf("a new stranger past the total after a restart: %v", err)
	}
}

// strangersTotal is the quota's strangers' total now.
func strangersTotal(f *fixture) int64 {
	f.svc.quota.mu.Lock()
	defer f.svc.quota.mu.Unlock()
	return f.svc.quota.strangersN
}

// A stranger trusted, untrusted or written to during the run takes what
// it stored across to the other side at once: the strangers' total frees
// its room for other strangers, or takes it back. A pin on first use
// moves nothing.
func TestTrustMovesUsageBetweenQuotasAtOnce(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	body := strings.Repeat("z", 4<<10)
	cost := costOf(t, body)
	setQuotas(f, 100*cost, 3*cost+cost/2)
	if !f.svc.quota.settled(ctx) {
		t.Fatal("the quota's walk never ended")
	}
	send := func(p party) error {
		return f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, p, f.me.id, message.KindText, body)})[0]
	}
	mallory, eve, zed := newParty(t, "mallory"), newParty(t, "eve"), newParty(t, "zed")
	for range 3 {
		if err := send(mallory); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(newParty(t, "fresh")); !errors.Is(err, errOverQuota) {
		t.Fatalf("a fourth stranger's message under a total of 3.5: %v", err)
	}
	// lanchat trust mallory: her three leave the strangers' total now.
	if _, err := f.svc.Trust(mallory.id); err != nil {
		t.Fatal(err)
	}
	if got := strangersTotal(f); got != 0 {
		t.Fatalf("strangers' total after trusting the only stranger: %d, want 0", got)
	}
	for range 2 {
		if err := send(eve); err != nil {
			t.Fatalf("a stranger after the trusted one left the total: %v", err)
		}
	}
	// eve proven on the LAN under a free name: pinned on first use, and
	// her two stay in the total.
	f.svc.Saw(verified(eve, "eve"))
	if got, want := strangersTotal(f), 2*costFrom(t, eve, body); got != want {
		t.Fatalf("strangers' total after eve was pinned on first use: %d, want %d (hers)", got, want)
	}
	if err := send(zed); err != nil {
		t.Fatal(err)
	}
	// lanchat untrust mallory: a stranger again, her three are back in,
	// and the total (3 + eve's 2 + zed's 1) is past 3.5.
	if _, err := f.svc.Untrust(mallory.id); err != nil {
		t.Fatal(err)
	}
	if got, want := strangersTotal(f), 3*costFrom(t, mallory, body)+2*costFrom(t, eve, body)+costFrom(t, zed, body); got != want {
		t.Fatalf("strangers' total after untrusting mallory: %d, want %d", got, want)
	}
	if err := send(newParty(t, "fresh")); !errors.Is(err, errOverQuota) {
		t.Fatalf("a stranger past the total once mallory's bytes came back: %v", err)
	}
	// Writing to zed, never loaded by a send of ours: out at once.
	f.pres.set(zed.id, "zed", mesh.Available)
	if _, err := f.svc.Send(ctx, zed.id, "hi zed", false); err != nil {
		t.Fatal(err)
	}
	if got, want := strangersTotal(f), 3*costFrom(t, mallory, body)+2*costFrom(t, eve, body); got != want {
		t.Fatalf("strangers' total after writing to zed: %d, want %d", got, want)
	}
	// lanchat trust eve, pinned on first use before: her two leave now.
	if _, err := f.svc.Trust(eve.id); err != nil {
		t.Fatal(err)
	}
	if got, want := strangersTotal(f), 3*costFrom(t, mallory, body); got != want {
		t.Fatalf("strangers' total after trusting eve: %d, want %d", got, want)
	}
}

// The quotas bound the disk, not just the signed bytes: strangers send
// the messages that cost the history most for their size (a few bytes;
// 1 KB of distinct four-letter words; 60 KB of distinct eight-letter
// words, as TestHostileDiskFill's attacker) until each is refused, and
// the history file grows by no more than the strangers' total quota.
func TestQuotaBoundsTheDisk(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	const stranger, strangers = 4 << 20, 10 << 20
	setQuotas(f, stranger, strangers)
	if !f.svc.quota.settled(ctx) {
		t.Fatal("the quota's walk never ended")
	}
	db := filepath.Join(f.dir, "history.db")
	var word uint32
	words := func(n int, format string, mask uint32) string {
		var b []byte
		for len(b) < n {
			word += 0x9e3779b1
			b = fmt.Appendf(b, format, word&mask)
		}
		return string(b)
	}
	shapes := []struct {
		name string
		body func() string
	}{
		{"60 KB of distinct 8-letter words", func() string { return words(60<<10, "%08x ", ^uint32(0)) }},
		{"1 KB of distinct 4-letter words", func() string { return words(1<<10, "%04x ", 0xffff) }},
		{"2 bytes", func() string { return "hi" }},
	}
	var sealed int64
	stored := map[string]int{}
	for i := range 2 * len(shapes) {
		sh := shapes[i%len(shapes)]
		p := newParty(t, fmt.Sprintf("filler%d", i))
	fill:
		for {
			var batch []*message.Envelope
			for range 32 {
				batch = append(batch, sealFrom(t, p, f.me.id, message.KindText, sh.body()))
			}
			for j, err := range f.svc.DeliverBatch(ctx, batch) {
				if errors.Is(err, errOverQuota) {
					break fill
				}
				if err != nil {
					t.Fatal(err)
				}
				stored[sh.name]++
				sealed += int64(len(batch[j].Sealed()))
			}
		}
		f.svc.quota.mu.Lock()
		u := f.svc.quota.peers[p.id]
		f.svc.quota.mu.Unlock()
		if u != nil && u.bytes > stranger {
			t.Fatalf("%s: a stranger charged %d, quota %d", sh.name, u.bytes, stranger)
		}
	}
	if got := strangersTotal(f); got > strangers {
		t.Fatalf("strangers' total %d over %d", got, strangers)
	}
	// Closing the history checkpoints its log into the file and removes
	// the log: what is left is what the messages take.
	f.st.Close()
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stored %v; %d KiB signed, history file %d KiB (%.1f× the signed bytes), strangers' quota %d KiB",
		stored, sealed>>10, fi.Size()>>10, float64(fi.Size())/float64(sealed), int64(strangers)>>10)
	if len(stored) != len(shapes) {
		t.Fatalf("some shape stored nothing: %v", stored)
	}
	// An empty history is a few pages; 64 KiB covers them.
	if fi.Size() > strangers+64<<10 {
		t.Errorf("the history file is %d KiB after strangers filled a quota of %d KiB", fi.Size()>>10, int64(strangers)>>10)
	}
	if fi.Size() < strangers/2 {
		t.Errorf("the history file is %d KiB: the strangers did not fill their quota of %d KiB (the charge is too strict)", fi.Size()>>10, int64(strangers)>>10)
	}
}
