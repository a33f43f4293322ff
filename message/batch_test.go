package message

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestBatchedReceive pins that frames arriving together reach DeliverBatch
// together, in order, with a repeat inside one batch delivered once, and
// each acknowledged according to its own result.
func TestBatchedReceive(t *testing.T) {
	n := newTestNet()
	var mu sync.Mutex
	var batches [][]string
	b := newPeer(t, n, func(c *Config) {
		c.DeliverBatch = func(ctx context.Context, envs []*Envelope) []error {
			errs := make([]error, len(envs))
			var ids []string
			for i, e := range envs {
				ids = append(ids, e.Body)
				if e.Body == "refuse me" {
					errs[i] = errors.New("no room")
				}
			}
			mu.Lock()
			batches = append(batches, ids)
			mu.Unlock()
			return errs
		}
	})
	a := newIdentity(t)
	var frames []byte
	var sealedIDs [][idLen]byte
	bodies := []string{"one", "two", "refuse me", "three"}
	for _, body := range bodies {
		env := Envelope{To: b.id.id, Kind: KindText, Body: body}
		sealed, err := Seal(&env, a.key)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peekID(sealed)
		sealedIDs = append(sealedIDs, id)
		frames = AppendFrame(frames, FrameMsg, sealed)
		if body == "two" { // the same message again, in the same write
			frames = AppendFrame(frames, FrameMsg, sealed)
			sealedIDs = append(sealedIDs, id)
		}
	}
	c := rawClient(t, a, b)
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	want := []AckStatus{AckOK, AckOK, AckDuplicate, AckRejected, AckOK}
	for i := range want {
		f, err := ReadFrame(c)
		if err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
		ack, err := ParseAck(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ack.ID != sealedIDs[i] || ack.Status != want[i] {
			t.Fatalf("ack %d: %x %v, want %x %v", i, ack.ID, ack.Status, sealedIDs[i], want[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var all []string
	for _, bt := range batches {
		all = append(all, bt...)
	}
	if len(all) != 4 || all[0] != "one" || all[1] != "two" || all[2] != "refuse me" || all[3] != "three" {
		t.Fatalf("delivered %q in batches %q; want each message once, in order", all, batches)
	}
	if len(batches) == len(all) {
		t.Logf("note: frames arrived one at a time (%d batches)", len(batches))
	}
}

// TestSendInOrderKeepsQueueOrder pins that a queue sent with SendInOrder,
// each message started once the previous one was written, arrives in
// order although the acknowledgements are awaited together.
func TestSendInOrderKeepsQueueOrder(t *testing.T) {
	n := newTestNet()
	b := newPeer(t, n, nil)
	a := newPeer(t, n, nil)
	const count = 300
	var wg sync.WaitGroup
	errs := make([]error, count)
	for i := range count {
		env := Envelope{Author: a.id.id, To: b.id.id, Kind: KindText, Body: fmt.Sprint(i)}
		sealed, err := Seal(&env, a.id.key)
		if err != nil {
			t.Fatal(err)
		}
		written := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.svc.SendInOrder(context.Background(), sealed, &env, func(bool) { close(written) })
		}()
		<-written
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := b.delivered()
	if len(got) != count {
		t.Fatalf("delivered %d, want %d", len(got), count)
	}
	for i, e := range got {
		if e.Body != fmt.Sprint(i) {
			t.Fatalf("position %d holds message %s", i, e.Body)
		}
	}
}

// TestSendBatch: chunks of a queue arrive in order and once each, in
// batches at the receiver, also when the stream is cut in the middle.
func TestSendBatch(t *testing.T) {
	n := newTestNet()
	var mu sync.Mutex
	var got []string
	var batches int
	b := newPeer(t, n, func(c *Config) {
		c.DeliverBatch = func(ctx context.Context, envs []*Envelope) []error {
			mu.Lock()
			defer mu.Unlock()
			batches++
			for _, e := range envs {
				got = append(got, e.Body)
			}
			return make([]error, len(envs))
		}
	})
	a := newPeer(t, n, nil)
	const count = 600
	var items []Queued
	for i := range count {
		env := Envelope{Author: a.id.id, To: b.id.id, Kind: KindText, Body: fmt.Sprint(i)}
		sealed, err := Seal(&env, a.id.key)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, Queued{ID: env.ID, Sealed: sealed})
	}
	ctx := context.Background()
	for start := 0; start < count; start += 200 {
		if start == 400 {
			b.cutAll() // the stream breaks between chunks: the next one redials
		}
		for i, err := range a.svc.SendBatch(ctx, b.id.id, items[start:start+200], func(bool) {}) {
			if err != nil {
				t.Fatalf("message %d: %v", start+i, err)
			}
		}
	}
	// the same chunk again: acknowledged as duplicates, delivered once
	for i, err := range a.svc.SendBatch(ctx, b.id.id, items[:200], func(bool) {}) {
		if err != nil {
			t.Fatalf("resend %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != count {
		t.Fatalf("delivered %d, want %d", len(got), count)
	}
	for i, body := range got {
		if body != fmt.Sprint(i) {
			t.Fatalf("position %d holds message %s", i, body)
		}
	}
	if batches >= count/2 {
		t.Errorf("%d deliveries for %d messages: frames written together were not taken together", batches, count)
	}
}
