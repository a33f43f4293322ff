package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"lanchat/message"
)

// The store orders what it returns exactly as message.Compare orders the
// envelopes: in SQL (History of a conversation, Outbox), in Go (History of
// everything, search), with ties of time between authors and of author
// between ids.
func TestStoreOrderIsMessageOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			s := openTest(t)
			ctx := context.Background()
			var all, withBob, toBob []*message.Envelope
			ids := map[string]bool{}
			for i := range 120 {
				// Few distinct times, ids that collide across authors.
				ts := at(float64(rng.IntN(4)))
				ts.Logical = uint32(rng.IntN(3))
				var from, to person
				switch rng.IntN(4) {
				case 0:
					from, to = alice, bob
				case 1:
					from, to = alice, carol
				case 2:
					from, to = bob, alice
				default:
					from, to = carol, alice
				}
				env := &message.Envelope{ID: fmt.Sprintf("%032x", rng.IntN(40)), AuthorName: from.name, To: to.id,
					Time: ts, Kind: message.KindText, Body: fmt.Sprint("word ", i)}
				if ids[from.id+env.ID] {
					continue // (author, id) is unique
				}
				ids[from.id+env.ID] = true
				if _, err := message.Seal(env, from.key); err != nil {
					t.Fatal(err)
				}
				if from.id == alice.id {
					if err := s.AddOutgoing(ctx, env); err != nil {
						t.Fatal(err)
					}
				} else if _, err := s.AddReceived(ctx, env); err != nil {
					t.Fatal(err)
				}
				all = append(all, env)
				if from.id == bob.id || to.id == bob.id {
					withBob = append(withBob, env)
				}
				if to.id == bob.id {
					toBob = append(toBob, env)
				}
			}
			for _, envs := range [][]*message.Envelope{all, withBob, toBob} {
				slices.SortFunc(envs, message.Compare)
			}
			for _, c := range []struct {
				name string
				get  func() ([]Record, error)
				want []*message.Envelope
			}{
				{"history", func() ([]Record, error) { return s.History(ctx, Query{}) }, all},
				{"history, newest 7", func() ([]Record, error) { return s.History(ctx, Query{Limit: 7}) }, all[len(all)-7:]},
				{"search", func() ([]Record, error) { return s.History(ctx, Query{Search: "word"}) }, all},
				{"conversation", func() ([]Record, error) { return s.History(ctx, Query{Peer: bob.id}) }, withBob},
				{"conversation, newest 5", func() ([]Record, error) { return s.History(ctx, Query{Peer: bob.id, Limit: 5}) }, withBob[len(withBob)-5:]},
				{"outbox", func() ([]Record, error) { return s.Outbox(ctx, bob.id, 0) }, toBob},
			} {
				recs, err := c.get()
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if got, want := keysOf(recs), envKeys(c.want); !slices.Equal(got, want) {
					t.Fatalf("%s: order\n%v\nwant (message.Compare)\n%v", c.name, got, want)
				}
			}
			// And sortRecords, from any order.
			recs, err := s.History(ctx, Query{})
			if err != nil {
				t.Fatal(err)
			}
			rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
			sortRecords(recs)
			if got, want := keysOf(recs), envKeys(all); !slices.Equal(got, want) {
				t.Fatalf("sortRecords: %v\nwant %v", got, want)
			}
		})
	}
}

func keysOf(recs []Record) []message.OrderKey {
	out := make([]message.OrderKey, len(recs))
	for i := range recs {
		out[i] = recs[i].OrderKey()
	}
	return out
}

func envKeys(envs []*message.Envelope) []message.OrderKey {
	out := make([]message.OrderKey, len(envs))
	for i, e := range envs {
		out[i] = e.OrderKey()
	}
	return out
}
