package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

var errMalformedReceipt = errors.New("malformed receipt")

// parseReceipt reads a receipt body. Anything but a read receipt naming
// at most maxReceiptIDs well-formed ids is refused whole.
func parseReceipt(body string) (receiptBody, error) {
	var rb receiptBody
	if err := json.Unmarshal([]byte(body), &rb); err != nil || rb.State != "read" || len(rb.IDs) > maxReceiptIDs {
		return receiptBody{}, errMalformedReceipt
	}
	for _, id := range rb.IDs {
		if !validMessageID(id) {
			return receiptBody{}, errMalformedReceipt
		}
	}
	return rb, nil
}

// DeliverBatch stores what a stream received in one go; it is
// message.Config.DeliverBatch. Messages are stored before they are
// acknowledged (errs[i] nil means stored); concurrent calls share the
// store's group commit, so a batch costs one transaction. Every envelope
// — message or receipt — counts against its author's allowance.
func (s *Service) DeliverBatch(ctx context.Context, envs []*message.Envelope) []error {
	errs := make([]error, len(envs))
	inserted := make([]bool, len(envs))
	var texts []*message.Envelope
	var textIdx []int
	receipts := map[string][]int{} // by author: indexes of their receipts, in order
	var authors []string
	var roomEnvs []*message.Envelope
	var roomIdx []int
	for i, env := range envs {
		if env.Conversation != "" {
			if !s.limiter.allow(env.Author) {
				errs[i] = errRateLimited
				continue
			}
			roomEnvs = append(roomEnvs, env)
			roomIdx = append(roomIdx, i)
			continue
		}
		switch env.Kind {
		case message.KindText, KindReceipt, KindTyping:
		default:
			errs[i] = fmt.Errorf("unsupported message kind %q", env.Kind)
			continue
		}
		if !s.limiter.allow(env.Author) {
			errs[i] = errRateLimited
			continue
		}
		if env.Kind == KindTyping {
			errs[i] = s.receiveTyping(ctx, env)
			continue
		}
		if env.Kind == KindReceipt {
			if _, ok := receipts[env.Author]; !ok {
				authors = append(authors, env.Author)
			}
			receipts[env.Author] = append(receipts[env.Author], i)
			continue
		}
		if err := s.quota.reserve(ctx, env); err != nil {
			errs[i] = err
			continue
		}
		texts = append(texts, env)
		textIdx = append(textIdx, i)
	}
	if len(roomEnvs) > 0 {
		// On a direct stream each is its author's own (message.Service
		// checks), so the author is who handed it over.
		for j, err := range s.rooms.accept(ctx, roomEnvs[0].Author, roomEnvs) {
			errs[roomIdx[j]] = err
		}
	}
	var at []message.Timestamp // by texts' index: where each is kept, when not at its author's time
	var claimed []time.Time    // and the author's time it then claimed
	if len(texts) > 0 {
		at, claimed = s.arrivalTimes(texts)
		ins, err := s.st.AddReceivedBatchAt(ctx, texts, at)
		for j, i := range textIdx {
			if err != nil {
				errs[i] = err
			} else {
				inserted[i] = ins[j]
			}
			if !inserted[i] {
				s.quota.release(texts[j]) // not stored, or stored before
			}
		}
	}
	for j, i := range textIdx {
		if errs[i] != nil || !inserted[i] {
			continue
		}
		env := envs[i]
		name := env.AuthorName
		if mesh.ValidName(name) != nil {
			name = mesh.ShortID(env.Author)
		}
		s.contacts.saw(env.Author, name)
		from := s.ref(env.Author, name)
		ev := MessageEvent{ID: env.ID, From: from, To: s.Self(), Text: env.Body, Time: env.Time.WallTime()}
		if !claimed[j].IsZero() {
			ev.Time, ev.ClaimedTime = at[j].WallTime(), claimed[j]
		}
		s.cfg.Publish(ev)
	}
	// Receipts after the messages they may follow; one statement per
	// author for the whole batch.
	for _, author := range authors {
		var ids []string
		for _, i := range receipts[author] {
			rb, err := parseReceipt(envs[i].Body)
			if err != nil {
				errs[i] = err
				continue
			}
			ids = append(ids, rb.IDs...)
		}
		if len(ids) == 0 {
			continue
		}
		// Only the recipient of a message may say it was read: the store
		// moves our messages to that author and ignores the rest.
		changed, err := s.st.ApplyReceipts(ctx, author, ids, store.Read)
		if err != nil {
			for _, i := range receipts[author] {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			continue
		}
		ref := s.PeerRef(author)
		for _, id := range changed {
			s.cfg.Publish(ReceiptEvent{ID: id, State: store.Read, Peer: ref})
		}
	}
	return errs
}

// arrivalTimes decides where each received direct message is kept: at
// its author's time, or — when that is more than message.MaxClockAhead
// ahead of our clock — at its arrival, so that a wrong or hostile clock
// cannot pin a message to the end of a conversation, above everything
// said after it, for as long as it is ahead. at[i] is zero for the first
// kind; claimed[i] is the author's time for the second. Room events keep
// their author's time whatever it is: every member must order a room the
// same way, and arrival differs from member to member.
func (s *Service) arrivalTimes(envs []*message.Envelope) (at []message.Timestamp, claimed []time.Time) {
	at = make([]message.Timestamp, len(envs))
	claimed = make([]time.Time, len(envs))
	for i, env := range envs {
		now := s.clock.Now()
		if env.Time.Wall-now.Wall > int64(message.MaxClockAhead) {
			at[i], claimed[i] = now, env.Time.WallTime()
		}
	}
	return at, claimed
}

// validMessageID: a message id is 32 lowercase hex digits.
func validMessageID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
