package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recv returns the next event from evc, failing the test after timeout.
func recv(t testing.TB, evc <-chan Event, timeout time.Duration) Event {
	t.Helper()
	select {
	case ev := <-evc:
		return ev
	case <-time.After(timeout):
		t.Fatalf("no event within %v", timeout)
		return nil
	}
}

// subscribe runs c.Events until ctx ends, sending each event to the
// returned channel and Events' result to the error channel.
func subscribe(ctx context.Context, c *Client, fn func(Event)) <-chan error {
	errc := make(chan error, 1)
	go func() {
		errc <- c.Events(ctx, func(ev Event) error {
			fn(ev)
			return nil
		})
	}()
	return errc
}

func waitErr(t testing.TB, errc <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(timeout):
		t.Fatalf("Events did not return within %v", timeout)
		return nil
	}
}

func TestEventsSnapshotThenInOrder(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evc := make(chan Event, 64)
	errc := subscribe(ctx, NewClient(sock), func(ev Event) { evc <- ev })

	first := recv(t, evc, 10*time.Second)
	snap, ok := first.(Snapshot)
	if !ok {
		t.Fatalf("first event %#v, want a snapshot", first)
	}
	if want := (Snapshot{Type: TypeSnapshot, Seq: snap.Seq, Self: f.self, Peers: f.peers, Rooms: f.rooms}); snap.Seq == 0 || !reflect.DeepEqual(snap, want) {
		t.Fatalf("snapshot %+v, want %+v with a seq", snap, want)
	}

	var want []Event
	want = append(want,
		f.publish(Ready{ID: f.self.ID, Name: "self", Addr: "10.0.0.9", GossipPort: 7946, Port: 7947, Control: "/x/control.sock", MDNS: true}),
		f.publish(Message{ID: "m1", From: bobRef, To: aliceRef, Text: "hi <there>", Time: t0}),
		f.publish(Message{ID: "m2", From: aliceRef, To: bobRef, Text: "hello", Time: t0, Outgoing: true}),
		f.publish(Message{ID: "m3", From: bobRef, To: PeerRef{ID: "#general", Name: "#general"}, Text: "@alice lunch?", Time: t0,
			Room: "#general", Mentions: []string{alice.ID}}),
	)
	for _, change := range []string{ChangeJoined, ChangeReturned, ChangeStatus, ChangeVerified, ChangeLeft, ChangeLost} {
		want = append(want, f.publish(Presence{Peer: bobRef, State: "away", StatusText: "lunch", Change: change, Addr: "10.0.0.2", Verified: true}))
	}
	want = append(want,
		f.publish(Receipt{ID: "m2", State: "read", Peer: bobRef}),
		f.publish(Warning{Text: "disk almost full"}),
	)
	for _, change := range []string{RoomJoined, RoomLeft} {
		want = append(want, f.publish(RoomChange{Room: Room{Name: "#general", Joined: true, MembersOnline: 2, MembersTotal: 3}, Peer: bobRef, Change: change}))
	}
	last := snap.Seq
	for i, w := range want {
		got := recv(t, evc, 10*time.Second)
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("event %d: %#v, want %#v", i, got, w)
		}
		if got.EventSeq() <= last {
			t.Errorf("event %d: seq %d after %d", i, got.EventSeq(), last)
		}
		last = got.EventSeq()
	}

	cancel()
	if err := waitErr(t, errc, 10*time.Second); err != nil {
		t.Errorf("Events after cancel: %v, want nil", err)
	}
	waitFor(t, 10*time.Second, func() error {
		if live, _ := f.subscribers(); live != 0 {
			return errors.New("the subscription outlives its client")
		}
		return nil
	})
}

// TestEventsWireForm pins what `curl -N` shows: ndjson, a snapshot first
// with its type and seq, peers and rooms lists even when empty.
func TestEventsWireForm(t *testing.T) {
	f := newFake()
	f.peers, f.rooms = nil, nil
	sock, _ := serve(t, f, testConfig())
	req, _ := http.NewRequest("GET", "http://lanchat/v1/events", nil)
	resp, err := rawClient(sock).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, `{"type":"snapshot","seq":1,`) || !strings.Contains(line, `"peers":[]`) || !strings.Contains(line, `"rooms":[]`) {
		t.Errorf("first line %q", line)
	}
	// An event published without its type still goes with it.
	f.publish(&Warning{Text: "no type set"})
	line, err = br.ReadString('\n')
	if err != nil || line != `{"type":"warning","seq":2,"text":"no type set"}`+"\n" {
		t.Errorf("second line %q, %v", line, err)
	}
	f.close()
	if rest, err := br.ReadString('\n'); rest != "" || err == nil {
		t.Errorf("after the node closed: %q, %v; want the end of the stream", rest, err)
	}
}

func TestEventsEndWhenNodeCloses(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	evc := make(chan Event, 8)
	errc := subscribe(context.Background(), NewClient(sock), func(ev Event) { evc <- ev })
	recv(t, evc, 10*time.Second)
	f.close()
	if err := waitErr(t, errc, 10*time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Events: %v, want ErrClosed", err)
	}
}

func TestShutdownEndsEventStreams(t *testing.T) {
	f := newFake()
	sock, srv := serve(t, f, testConfig())
	evc := make(chan Event, 8)
	errc := subscribe(context.Background(), NewClient(sock), func(ev Event) { evc <- ev })
	recv(t, evc, 10*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := waitErr(t, errc, 10*time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Events: %v, want ErrClosed", err)
	}
}

func TestEventsFnErrorEndsSubscription(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	stop := errors.New("enough")
	err := NewClient(sock).Events(ctxFor(t, 10*time.Second), func(Event) error { return stop })
	if err != stop {
		t.Fatalf("Events: %v, want fn's error", err)
	}
	waitFor(t, 10*time.Second, func() error {
		if live, _ := f.subscribers(); live != 0 {
			return errors.New("the subscription outlives its client")
		}
		return nil
	})
}

func TestEventsFailingAtOnceIsAnErrorReply(t *testing.T) {
	sock, _ := serve(t, notRunning{newFake()}, testConfig())
	err := NewClient(sock).Events(ctxFor(t, 10*time.Second), func(Event) error { return nil })
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "lanchat run") {
		t.Fatalf("Events: %v, want failed with ErrNotRunning's text", err)
	}
}

type notRunning struct{ *fake }

func (notRunning) Events(context.Context, func(Event) error) error { return ErrNotRunning }

// bigWarning is an event large enough that a few fill a socket's buffers.
func bigWarning() Event { return Warning{Text: strings.Repeat("w", 32<<10)} }

// TestStalledSubscriberGetsResync: a client that stops reading its
// stream overflows its queue on the node; when it reads again it gets the
// events written before, then a resync line, then the end. Meanwhile the
// node serves everyone else.
func TestStalledSubscriberGetsResync(t *testing.T) {
	f := newFake()
	f.queue = 4
	sock, _ := serve(t, f, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	gate := make(chan struct{})
	stalledc := make(chan Event, 1<<16)
	stalled := subscribe(ctx, NewClient(sock), func(ev Event) {
		stalledc <- ev
		if ev.EventType() == TypeSnapshot {
			<-gate // stop reading
		}
	})
	snap := recv(t, stalledc, 10*time.Second)

	// Events at a pace a reading client keeps up with, until the stalled
	// one's queue overflows.
	waitFor(t, 30*time.Second, func() error {
		f.publish(bigWarning())
		time.Sleep(time.Millisecond)
		if _, over := f.subscribers(); over == 0 {
			return errors.New("the stalled subscriber has not overflowed")
		}
		return nil
	})

	// Meanwhile, other clients are served promptly.
	other := NewClient(sock)
	start := time.Now()
	if _, err := other.Peers(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Peers while a subscriber stalls: %v", err)
	}
	t.Logf("peers in %v while a subscriber stalls", time.Since(start))
	octx, ocancel := context.WithCancel(ctx)
	otherc := make(chan Event, 16)
	otherErr := subscribe(octx, other, func(ev Event) { otherc <- ev })
	if ev := recv(t, otherc, 5*time.Second); ev.EventType() != TypeSnapshot {
		t.Fatalf("the other stream began with %#v", ev)
	}
	want := f.publish(Warning{Text: "for the other"})
	if ev := recv(t, otherc, 5*time.Second); !reflect.DeepEqual(ev, want) {
		t.Fatalf("the other stream got %#v, want %#v", ev, want)
	}
	ocancel()
	if err := waitErr(t, otherErr, 10*time.Second); err != nil {
		t.Errorf("other Events: %v", err)
	}

	// The stalled client reads again.
	close(gate)
	if err := waitErr(t, stalled, 30*time.Second); !errors.Is(err, ErrResync) {
		t.Fatalf("stalled Events: %v, want ErrResync", err)
	}
	close(stalledc)
	last := snap.EventSeq()
	var resync *Resync
	n := 0
	for ev := range stalledc {
		if resync != nil {
			t.Fatalf("event %#v after the resync", ev)
		}
		if r, ok := ev.(Resync); ok {
			resync = &r
			continue
		}
		if ev.EventSeq() <= last {
			t.Errorf("seq %d after %d", ev.EventSeq(), last)
		}
		last = ev.EventSeq()
		n++
	}
	if resync == nil || resync.Seq != last || resync.Dropped == 0 || resync.Reason == "" {
		t.Fatalf("resync %+v after %d events up to seq %d; want one numbered %d, with drops and a reason", resync, n, last, last)
	}
	t.Logf("the stalled client got %d events, then %+v", n, *resync)
}

// TestDeadSubscriberIsCutOff: a client that never reads again loses its
// stream after the write timeout; its subscription does not hold the node.
func TestDeadSubscriberIsCutOff(t *testing.T) {
	f := newFake()
	f.queue = 1 << 20 // never overflows: only the write timeout ends it
	cfg := testConfig()
	cfg.EventWriteTimeout = 200 * time.Millisecond
	sock, _ := serve(t, f, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gate := make(chan struct{})
	defer close(gate)
	got := make(chan Event, 1)
	dead := subscribe(ctx, NewClient(sock), func(ev Event) {
		select {
		case got <- ev:
		default:
		}
		<-gate
	})
	recv(t, got, 10*time.Second)

	waitFor(t, 30*time.Second, func() error {
		f.publish(bigWarning())
		time.Sleep(time.Millisecond)
		if live, _ := f.subscribers(); live != 0 {
			return errors.New("the dead client's subscription is still live")
		}
		return nil
	})
	select {
	case err := <-dead:
		t.Fatalf("the client's Events returned %v while its fn was blocked", err)
	default:
	}
}
