package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// KindReceipt is the envelope kind of a read receipt: the recipient of
// messages tells their author that a person has seen them. Its body is a
// receiptBody as JSON. Receipts travel, wait in the outbox and are
// de-duplicated exactly like messages, so they survive the author being
// offline; they are never shown as messages.
const KindReceipt = "receipt"

// receiptBody is the JSON body of a KindReceipt envelope.
type receiptBody struct {
	State string   `json:"state"` // "read"
	IDs   []string `json:"ids"`   // ids of messages the receipt's author received from the recipient
}

// maxReceiptIDs keeps a receipt's body well inside message.MaxText.
const maxReceiptIDs = 1000

// ReceiptEvent reports a change in the state of a message this node sent:
// queued, sent, delivered (the recipient's node stored it) or read.
type ReceiptEvent struct {
	Type  string  `json:"type"` // "receipt"
	ID    string  `json:"id"`
	State string  `json:"state"`
	Peer  PeerRef `json:"peer"`
}

// chat is the durable side of messaging: the history store, the outbox
// and receipts. A running node and a one-shot command each have one.
type chat struct {
	st    *store.Store
	self  string
	name  func() string
	key   []byte // ed25519.PrivateKey
	clock *message.Clock
}

func (c *chat) seal(to, kind, body string) (*message.Envelope, []byte, error) {
	env := &message.Envelope{
		Author: c.self, AuthorName: c.name(), To: to, Time: c.clock.Now(), Kind: kind, Body: body,
	}
	sealed, err := message.Seal(env, c.key)
	if err != nil {
		return nil, nil, err
	}
	return env, sealed, nil
}

// queue seals a message and stores it in the outbox. Once it returns the
// message survives a crash of this process.
func (c *chat) queue(ctx context.Context, to, kind, body string) (*message.Envelope, error) {
	env, _, err := c.seal(to, kind, body)
	if err != nil {
		return nil, err
	}
	if err := c.st.AddOutgoing(ctx, env); err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	return env, nil
}

// markRead marks received messages read and queues a receipt to each
// author for exactly the ones that changed. It returns the authors to
// flush receipts to.
func (c *chat) markRead(ctx context.Context, ids []string) ([]string, error) {
	changed, err := c.st.MarkRead(ctx, ids)
	if err != nil {
		return nil, err
	}
	byAuthor := map[string][]string{}
	var order []string
	for _, r := range changed {
		if r.Outgoing || r.Kind != message.KindText {
			continue
		}
		if _, ok := byAuthor[r.Author]; !ok {
			order = append(order, r.Author)
		}
		byAuthor[r.Author] = append(byAuthor[r.Author], r.ID)
	}
	for _, author := range order {
		ids := byAuthor[author]
		for len(ids) > 0 {
			n := min(len(ids), maxReceiptIDs)
			body, _ := json.Marshal(receiptBody{State: "read", IDs: ids[:n]})
			if _, err := c.queue(ctx, author, KindReceipt, string(body)); err != nil {
				return order, err
			}
			ids = ids[n:]
		}
	}
	return order, nil
}

// deliverBatch stores what a stream received in one go. Messages are
// stored before they are acknowledged; concurrent calls share the store's
// group commit, so a batch costs one transaction.
func (n *Node) deliverBatch(ctx context.Context, envs []*message.Envelope) []error {
	errs := make([]error, len(envs))
	inserted := make([]bool, len(envs))
	var texts []*message.Envelope
	var textIdx []int
	for i, env := range envs {
		switch env.Kind {
		case message.KindText:
		case KindReceipt:
			continue // applied below, after the messages they may follow
		default:
			errs[i] = fmt.Errorf("unsupported message kind %q", env.Kind)
			continue
		}
		if !n.limiter.allow(env.Author) {
			errs[i] = errRateLimited
			continue
		}
		texts = append(texts, env)
		textIdx = append(textIdx, i)
	}
	if len(texts) > 0 {
		// One transaction for the batch; other streams' batches share the
		// store's group commit.
		ins, err := n.chat.st.AddReceivedBatch(ctx, texts)
		for j, i := range textIdx {
			if err != nil {
				errs[i] = err
			} else {
				inserted[i] = ins[j]
			}
		}
	}
	for i, env := range envs {
		switch {
		case env.Kind == KindReceipt:
			errs[i] = n.applyReceipt(ctx, env)
		case errs[i] == nil && inserted[i]:
			from := PeerRef{ID: env.Author, Name: env.AuthorName}
			if mesh.ValidName(from.Name) != nil {
				from.Name = mesh.ShortID(env.Author)
			}
			n.contacts.saw(env.Author, from.Name)
			n.publish(MessageEvent{Type: "message", ID: env.ID, From: from, To: n.selfRef(), Text: env.Body, Time: env.Time.WallTime()})
		}
	}
	return errs
}

var errRateLimited = errors.New("too many messages: slow down")

// applyReceipt moves our messages named in a read receipt to Read. Only
// the recipient of a message may say it was read.
func (n *Node) applyReceipt(ctx context.Context, env *message.Envelope) error {
	var rb receiptBody
	if err := json.Unmarshal([]byte(env.Body), &rb); err != nil || rb.State != "read" || len(rb.IDs) > maxReceiptIDs {
		return fmt.Errorf("malformed receipt")
	}
	for _, id := range rb.IDs {
		rec, err := n.chat.st.Get(ctx, n.chat.self, id)
		if err != nil || !rec.Outgoing || rec.To != env.Author {
			continue // not ours, or not theirs to acknowledge: ignore, do not refuse the rest
		}
		changed, err := n.chat.st.SetState(ctx, id, store.Read)
		if err != nil {
			return err
		}
		if changed {
			n.publish(ReceiptEvent{Type: "receipt", ID: id, State: store.Read.String(), Peer: n.peerRef(env.Author)})
		}
	}
	return nil
}

func (n *Node) selfRef() PeerRef {
	info, _ := n.Info()
	return PeerRef{ID: info.ID, Name: info.Name}
}

// peerRef names a peer as best this node knows.
func (n *Node) peerRef(id string) PeerRef {
	if self := n.selfRef(); id == self.ID {
		return self
	}
	if m, _, err := n.parts(); err == nil {
		if p, ok := m.Peer(id); ok {
			return PeerRef{ID: id, Name: p.Name}
		}
	}
	if name, ok := n.contacts.name(id); ok {
		return PeerRef{ID: id, Name: name}
	}
	return PeerRef{ID: id, Name: mesh.ShortID(id)}
}

// SendResult says where a message went and how far it got.
type SendResult struct {
	ID    string  `json:"id"`
	To    PeerRef `json:"to"`
	State string  `json:"state"` // queued, sent, delivered
}

// Send resolves to (name, id or id prefix, among peers online now and
// everyone seen before), stores the message durably, and tries to deliver
// it at once if the peer is online. A message that cannot be delivered now
// stays in the outbox and goes out when the peer returns; Send then
// reports it queued, which is not an error. With wait, Send waits until ctx
// ends for the delivery.
func (n *Node) Send(ctx context.Context, to, text string, wait bool) (SendResult, error) {
	if err := CheckText(text); err != nil {
		return SendResult{}, err
	}
	m, _, err := n.parts()
	if err != nil {
		return SendResult{}, err
	}
	p, err := Resolve(to, n.knownPeers(m))
	if err != nil {
		return SendResult{}, err
	}
	ref := PeerRef{ID: p.ID, Name: p.Name}
	if p.ID == m.ID() {
		return SendResult{To: ref}, fmt.Errorf("%w: that is you", ErrInvalidText)
	}
	env, _, err := n.chat.seal(p.ID, message.KindText, text)
	if err != nil {
		return SendResult{To: ref}, err
	}
	w := n.watchDelivery(env.ID, p.ID)
	defer w.cancel()
	// Storing the message and sending it overlap when the peer is online:
	// nothing is reported (queued, sent or delivered) before the store has
	// it, and its delivery is recorded only after, but the recipient's
	// node can be storing it meanwhile. That halves what a person waits.
	// The one thing this changes: if our store fails (a full disk) the
	// recipient may have the message already; Send then says exactly that.
	sw := &storeWait{done: make(chan struct{})}
	go func() {
		defer close(sw.done)
		sw.err = n.chat.st.AddOutgoing(ctx, env)
	}()
	online := func() bool { cur, ok := m.Peer(p.ID); return ok && cur.Online() }
	if online() {
		n.out.add(p.ID, outItem{id: env.ID, to: p.ID, kind: env.Kind, sealed: env.Sealed(), stored: sw})
	}
	<-sw.done
	if sw.err != nil {
		// It may be on its way already: say what became of it.
		select {
		case <-w.delivered:
			return SendResult{ID: env.ID, To: ref, State: store.Delivered.String()},
				fmt.Errorf("delivered to %s, but not kept in your history: %w", p.Name, sw.err)
		case <-w.failed:
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return SendResult{To: ref}, fmt.Errorf("not sent: could not store the message: %w", sw.err)
	}
	res := SendResult{ID: env.ID, To: ref, State: store.Queued.String()}
	n.publish(MessageEvent{
		Type: "message", ID: env.ID, From: n.selfRef(), To: ref,
		Text: env.Body, Time: env.Time.WallTime(), Outgoing: true,
	})
	n.publish(ReceiptEvent{Type: "receipt", ID: env.ID, State: res.State, Peer: ref})
	if !online() {
		n.out.resync(p.ID) // it is in the store now, for when the peer comes
		if !wait {
			return res, nil
		}
	}
	var failed <-chan struct{}
	if !wait {
		failed = w.failed // without --wait, one failed attempt means: queued
	}
	select {
	case <-w.delivered:
		res.State = store.Delivered.String()
	case <-failed:
	case <-ctx.Done():
	}
	if res.State != store.Delivered.String() {
		if rec, err := n.chat.st.Get(context.Background(), n.chat.self, env.ID); err == nil {
			res.State = rec.State.String()
		}
	}
	return res, nil
}

// knownPeers is everyone a message could be addressed to: the peers of
// this run and the contacts remembered from earlier ones.
func (n *Node) knownPeers(m *mesh.Mesh) []mesh.Peer {
	live := m.Peers()
	seen := make(map[string]bool, len(live))
	for _, p := range live {
		seen[p.ID] = true
	}
	for _, c := range n.contacts.list() {
		if !seen[c.ID] && c.ID != m.ID() {
			live = append(live, mesh.Peer{ID: c.ID, Name: c.Name, State: mesh.Offline, LastSeen: c.LastSeen})
		}
	}
	return live
}

// deliveryWatch lets Send learn what became of its message: delivered,
// or a failed attempt to reach its peer.
type deliveryWatch struct {
	n         *Node
	id, peer  string
	delivered chan struct{}
	failed    chan struct{}
	dOnce     sync.Once
	fOnce     sync.Once
}

func (n *Node) watchDelivery(id, peer string) *deliveryWatch {
	w := &deliveryWatch{n: n, id: id, peer: peer, delivered: make(chan struct{}), failed: make(chan struct{})}
	n.watchMu.Lock()
	n.watchers[id] = w
	n.watchMu.Unlock()
	return w
}

func (w *deliveryWatch) cancel() {
	w.n.watchMu.Lock()
	if w.n.watchers[w.id] == w {
		delete(w.n.watchers, w.id)
	}
	w.n.watchMu.Unlock()
}

// notifyDelivered and notifyFailed tell the watchers of a message, or of
// a peer, what happened.
func (n *Node) notifyDelivered(id string) {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	if w := n.watchers[id]; w != nil {
		w.dOnce.Do(func() { close(w.delivered) })
	}
}

func (n *Node) notifyFailed(peer string) {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	for _, w := range n.watchers {
		if w.peer == peer {
			w.fOnce.Do(func() { close(w.failed) })
		}
	}
}

// History returns stored messages (see store.Query) and marks the
// received ones among them read, sending read receipts to their authors.
func (n *Node) History(ctx context.Context, q store.Query, markRead bool) ([]store.Record, error) {
	if _, _, err := n.parts(); err != nil {
		return nil, err
	}
	recs, err := n.chat.st.History(ctx, q)
	if err != nil {
		return nil, err
	}
	if markRead {
		if err := n.MarkRead(ctx, unreadIDs(recs)); err != nil {
			return recs, err
		}
	}
	return recs, nil
}

// MarkRead records that a person saw these received messages.
func (n *Node) MarkRead(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	authors, err := n.chat.markRead(ctx, ids)
	for _, a := range authors {
		n.out.resync(a) // the receipts are in the store, not in memory
	}
	return err
}

func unreadIDs(recs []store.Record) []string {
	var ids []string
	for _, r := range recs {
		if !r.Outgoing && r.State < store.Read {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// Outbox summarises what waits for whom.
func (n *Node) Outbox(ctx context.Context) ([]store.OutboxEntry, error) {
	if _, _, err := n.parts(); err != nil {
		return nil, err
	}
	return n.chat.st.OutboxSummary(ctx)
}

// resolveStored finds a peer by name or id among contacts, for commands
// that read the history without a running node.
func resolveStored(q string, contacts []contact) (mesh.Peer, error) {
	peers := make([]mesh.Peer, 0, len(contacts))
	for _, c := range contacts {
		peers = append(peers, mesh.Peer{ID: c.ID, Name: c.Name, State: mesh.Offline})
	}
	return Resolve(strings.TrimSpace(q), peers)
}
