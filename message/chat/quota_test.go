package chat

import (
	"context"
	"errors"
	"strings"
	"testing"

	"lanchat/mesh"
	"lanchat/message"
)

// setQuotas shrinks the quotas for a test.
func setQuotas(t *testing.T, stranger, strangers int64) {
	old1, old2 := quotaStranger, quotaStrangers
	quotaStranger, quotaStrangers = stranger, strangers
	t.Cleanup(func() { quotaStranger, quotaStrangers = old1, old2 })
}

// A stranger fills its quota and is refused, with a reason its node can
// show; once we write to it, it is no stranger and is taken again. Many
// strangers together stop at the strangers' total, while a pinned
// contact is still served.
func TestStrangersCannotFillTheDisk(t *testing.T) {
	setQuotas(t, 40<<10, 100<<10) // 40 KiB each, 100 KiB for all strangers
	f := newFixture(t, Config{})
	ctx := context.Background()
	body := strings.Repeat("x", 8<<10)
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
	if !errors.Is(err, errOverQuota) || stored < 3 || stored > 5 {
		t.Fatalf("a stranger stored %d messages of 8 KiB under a 40 KiB quota, then %v", stored, err)
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
	if refused == 0 {
		t.Fatal("30 fresh keys of 8 KiB each all stored under a 100 KiB total for strangers")
	}
	carol := newParty(t, "carol")
	f.svc.Saw(verified(carol, "carol"))
	if err := send(carol); err != nil {
		t.Fatalf("a pinned contact refused while strangers are over quota: %v", err)
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
	setQuotas(t, 40<<10, 30<<10)
	f := newFixture(t, Config{})
	ctx := context.Background()
	body := strings.Repeat("y", 8<<10)
	for range 3 {
		if err := f.svc.DeliverBatch(ctx, []*message.Envelope{sealFrom(t, newParty(t, "s"), f.me.id, message.KindText, body)})[0]; err != nil {
			t.Fatal(err)
		}
	}
	q := newQuota(f.svc) // as a restarted service builds it
	q.loadTotals(ctx)
	if !q.totalled || q.strangers < 3*8<<10 {
		t.Fatalf("strangers' total after a restart %d (totalled %v), want at least %d", q.strangers, q.totalled, 3*8<<10)
	}
	if err := q.reserve(ctx, sealFrom(t, newParty(t, "s"), f.me.id, message.KindText, body)); !errors.Is(err, errOverQuota) {
		t.Fatalf("a new stranger past the total after a restart: %v", err)
	}
}
