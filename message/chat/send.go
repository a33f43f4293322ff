package chat

import (
	"context"
	"fmt"
	"sync"
	"time"

	"lanchat/message"
	"lanchat/message/store"
)

// SendResult says where a message went and how far it got.
type SendResult struct {
	ID    string
	To    PeerRef
	State store.State
}

// Send resolves to (a name, id or id prefix, among Known), stores the
// message durably and, if the peer is online, delivers it at once. A
// message that cannot be delivered now stays in the outbox and goes out
// when the peer returns; Send then reports it queued, which is not an
// error. With wait, Send waits until ctx ends for the delivery, even when
// the peer is offline now.
func (s *Service) Send(ctx context.Context, to, text string, wait bool) (SendResult, error) {
	if err := CheckText(text); err != nil {
		return SendResult{}, err
	}
	if s.ctx.Err() != nil {
		return SendResult{}, ErrClosed
	}
	p, err := s.Resolve(to)
	if err != nil {
		return SendResult{}, err
	}
	ref := s.ref(p.ID, p.Name)
	if p.ID == s.cfg.Self {
		return SendResult{To: ref}, fmt.Errorf("%w: that is you", ErrInvalidText)
	}
	env, err := s.seal(p.ID, message.KindText, text)
	if err != nil {
		return SendResult{To: ref}, err
	}
	s.quota.wroteTo(ctx, p.ID) // someone we write to is no stranger
	w := s.watch.add(env.ID, p.ID)
	defer s.watch.remove(w)
	// Storing the message and sending it overlap when the peer is online:
	// nothing is reported (queued, sent or delivered) before the store has
	// it, and its delivery is recorded only after, but the recipient's
	// node can be storing it meanwhile. That halves what a person waits.
	// The one thing this changes: if our store fails (a full disk) the
	// recipient may have the message already; Send then says exactly that.
	//
	// The write does not end with ctx: once the message may be on the
	// wire, our history must have it whatever the caller does.
	sw := &storeWait{done: make(chan struct{}), published: make(chan struct{})}
	published := sync.OnceFunc(func() { close(sw.published) })
	defer published() // on failure
	go func() {
		defer close(sw.done)
		sw.err = s.st.AddOutgoing(context.WithoutCancel(ctx), env)
	}()
	_, online := s.online(p.ID)
	if online {
		s.out.add(p.ID, outItem{id: env.ID, to: p.ID, kind: env.Kind, sealed: env.Sealed(), stored: sw})
	}
	<-sw.done
	if sw.err != nil {
		// It may be on its way already: say what became of it.
		select {
		case <-w.delivered:
			return SendResult{ID: env.ID, To: ref, State: store.Delivered},
				fmt.Errorf("delivered to %s, but not kept in your history: %w", p.Name, sw.err)
		case <-w.failed:
		case <-time.After(2 * time.Second):
		}
		return SendResult{To: ref}, fmt.Errorf("not sent: could not store the message: %w", sw.err)
	}
	res := SendResult{ID: env.ID, To: ref, State: store.Queued}
	s.cfg.Publish(MessageEvent{
		ID: env.ID, From: s.Self(), To: ref, Text: env.Body, Time: env.Time.WallTime(), Outgoing: true,
	})
	s.cfg.Publish(ReceiptEvent{ID: env.ID, State: store.Queued, Peer: ref})
	published()
	if _, online = s.online(p.ID); !online {
		s.out.resync(p.ID) // it is in the store now, for when the peer comes
		if !wait {
			return res, nil
		}
	}
	var failed <-chan struct{}
	if !wait {
		failed = w.failed // without wait, one failed attempt means: queued
	}
	select {
	case <-w.delivered:
		res.State = store.Delivered
	case <-failed:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	if res.State != store.Delivered {
		if rec, err := s.st.Get(context.Background(), s.cfg.Self, env.ID); err == nil {
			res.State = rec.State
		}
	}
	return res, nil
}

// watchers let Send learn what became of its message: delivered, or a
// failed attempt to reach its peer.
type watchers struct {
	mu   sync.Mutex // guards byID
	byID map[string]*deliveryWatch
}

type deliveryWatch struct {
	id, peer  string
	delivered chan struct{} // closed when the recipient's node acknowledged the message
	failed    chan struct{} // closed when an attempt to reach the peer failed
	dOnce     sync.Once
	fOnce     sync.Once
}

func (ws *watchers) add(id, peer string) *deliveryWatch {
	w := &deliveryWatch{id: id, peer: peer, delivered: make(chan struct{}), failed: make(chan struct{})}
	ws.mu.Lock()
	ws.byID[id] = w
	ws.mu.Unlock()
	return w
}

func (ws *watchers) remove(w *deliveryWatch) {
	ws.mu.Lock()
	if ws.byID[w.id] == w {
		delete(ws.byID, w.id)
	}
	ws.mu.Unlock()
}

func (ws *watchers) delivered(id string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.byID[id]; w != nil {
		w.dOnce.Do(func() { close(w.delivered) })
	}
}

func (ws *watchers) failed(peer string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.byID {
		if w.peer == peer {
			w.fOnce.Do(func() { close(w.failed) })
		}
	}
}
