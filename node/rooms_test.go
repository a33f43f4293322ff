package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"lanchat/mesh"
	"lanchat/message"
	"lanchat/node/api"
)

func (r *running) roomEvents() []api.RoomChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.RoomChange
	for _, e := range r.events {
		if m, ok := e.(api.RoomChange); ok {
			out = append(out, m)
		}
	}
	return out
}

func roomTexts(t *testing.T, r *running, room string) []string {
	t.Helper()
	es, err := r.n.History(context.Background(), api.HistoryQuery{Peer: room, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.From.Name+":"+e.Kind+":"+e.Text)
	}
	return out
}

// Rooms through the node's API: #general from the start, a room joined
// by two of three, its messages, members, mentions and events, and the
// refusals a person meets.
func TestRoomsThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	c := start(t, "carol", a.gossip())
	all := []*running{a, b, c}
	for _, r := range all {
		waitFor(t, "everyone verified", 10*time.Second, func() bool {
			n := 0
			for _, p := range r.peers() {
				if p.Verified {
					n++
				}
			}
			return n == 2
		})
	}
	waitFor(t, "#general has all three", 10*time.Second, func() bool {
		ms, err := c.n.RoomMembers(ctx, "#general")
		return err == nil && len(ms) == 3
	})
	for _, r := range []*running{a, b} {
		if _, err := r.n.JoinRoom(ctx, api.RoomRequest{Room: "#ops"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "alice sees bob in #ops", 10*time.Second, func() bool {
		ms, _ := a.n.RoomMembers(ctx, "#ops")
		return len(ms) == 2
	})
	rep, err := a.n.Send(ctx, api.SendRequest{To: "#ops", Text: "deploy at 3, @bob", Wait: true, TimeoutMS: 5000})
	if err != nil || rep.Room != "#ops" || rep.Online != 1 || rep.Reached != 1 || rep.State != "delivered" {
		t.Fatalf("room send: %+v, %v", rep, err)
	}
	waitFor(t, "bob got it with his mention", 5*time.Second, func() bool {
		for _, m := range b.messages() {
			if m.Room == "#ops" && m.Text == "deploy at 3, @bob" && slices.Contains(m.Mentions, b.n.id.ID) {
				return true
			}
		}
		return false
	})
	for _, m := range c.messages() {
		if m.Room == "#ops" {
			t.Fatalf("carol, not in #ops, got %+v", m)
		}
	}
	want := []string{"alice:join:", "bob:join:", "alice:text:deploy at 3, @bob"}
	waitFor(t, "both hold #ops alike", 5*time.Second, func() bool {
		ha, hb := roomTexts(t, a, "#ops"), roomTexts(t, b, "#ops")
		return slices.Equal(ha, hb) && len(ha) == 3
	})
	if got := roomTexts(t, a, "#ops"); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("#ops history %q, want %q in some order", got, want)
	}
	// carol knows #ops exists and who is in it, without being in it.
	rooms, err := c.n.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rooms, func(r api.Room) bool { return r.Name == "#ops" })
	if i < 0 || rooms[i].Joined || rooms[i].MembersTotal != 2 {
		t.Fatalf("carol's rooms %+v", rooms)
	}
	// Refusals.
	for _, tc := range []struct {
		to   string
		want error
	}{
		{"#ops", api.ErrNotMember},
		{"#Not A Room", api.ErrInvalid},
	} {
		if _, err := c.n.Send(ctx, api.SendRequest{To: tc.to, Text: "hi"}); !errors.Is(err, tc.want) {
			t.Errorf("carol sends to %s: %v, want %v", tc.to, err, tc.want)
		}
	}
	if _, err := c.n.LeaveRoom(ctx, api.RoomRequest{Room: "#ops"}); !errors.Is(err, api.ErrNotMember) {
		t.Errorf("carol leaves #ops: %v, want not_member", err)
	}
	// bob leaves: everyone hears it, and alice's next message reaches nobody.
	if _, err := b.n.LeaveRoom(ctx, api.RoomRequest{Room: "#ops"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice sees bob leave, and carol's directory knows", 5*time.Second, func() bool {
		left := false
		for _, e := range a.roomEvents() {
			if e.Room.Name == "#ops" && e.Peer.ID == b.n.id.ID && e.Change == api.RoomLeft && e.Room.MembersTotal == 1 {
				left = true
			}
		}
		rooms, _ := c.n.Rooms(ctx)
		i := slices.IndexFunc(rooms, func(r api.Room) bool { return r.Name == "#ops" })
		return left && i >= 0 && rooms[i].MembersTotal == 1
	})
	rep, err = a.n.Send(ctx, api.SendRequest{To: "#ops", Text: "anyone?"})
	if err != nil || rep.Online != 0 {
		t.Fatalf("after bob left: %+v, %v", rep, err)
	}
	// Snapshots carry the rooms.
	got := make(chan api.Snapshot, 1)
	a.n.Events(ctx, func(ev api.Event) error {
		got <- ev.(api.Snapshot)
		return errors.New("enough")
	})
	snap := <-got
	if !slices.ContainsFunc(snap.Rooms, func(r api.Room) bool { return r.Name == "#general" && r.Joined }) {
		t.Fatalf("snapshot rooms %+v", snap.Rooms)
	}
}

// A room's retention set through one node's API reaches the other
// members: their room list, their events and their history show it; the
// refusals a person meets say why.
func TestRoomRetentionThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	waitFor(t, "#general has both", 10*time.Second, func() bool {
		ma, _ := a.n.RoomMembers(ctx, "#general")
		mb, _ := b.n.RoomMembers(ctx, "#general")
		return len(ma) == 2 && len(mb) == 2
	})
	r, err := a.n.SetRetention(ctx, api.RetentionRequest{Room: "#general", Retention: 30 * 86400})
	if err != nil || r.Retention != 30*86400 || r.Name != "#general" {
		t.Fatalf("SetRetention: %+v, %v", r, err)
	}
	waitFor(t, "bob's #general keeps 30 days", 10*time.Second, func() bool {
		rooms, _ := b.n.Rooms(ctx)
		i := slices.IndexFunc(rooms, func(r api.Room) bool { return r.Name == "#general" })
		return i >= 0 && rooms[i].Retention == 30*86400
	})
	waitFor(t, "bob's event says who set it", 5*time.Second, func() bool {
		return slices.ContainsFunc(b.roomEvents(), func(e api.RoomChange) bool {
			return e.Change == api.RoomRetention && e.Peer.ID == a.n.id.ID && e.Room.Retention == 30*86400
		})
	})
	if got := roomTexts(t, b, "#general"); !slices.Contains(got, "alice:retention:2592000") {
		t.Fatalf("bob's #general history %q lacks alice's setting", got)
	}
	for _, tc := range []struct {
		req  api.RetentionRequest
		want error
	}{
		{api.RetentionRequest{Room: "#general", Retention: 60}, api.ErrInvalid},
		{api.RetentionRequest{Room: "#general", Retention: -1}, api.ErrInvalid},
		{api.RetentionRequest{Room: "#general", Retention: 1 << 40}, api.ErrInvalid},
		{api.RetentionRequest{Room: "#Bad", Retention: 3600}, api.ErrInvalid},
		{api.RetentionRequest{Room: "#elsewhere", Retention: 3600}, api.ErrNotMember},
	} {
		if _, err := b.n.SetRetention(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("SetRetention(%+v): %v, want %v", tc.req, err, tc.want)
		}
	}
	if rooms, _ := a.n.Rooms(ctx); !slices.ContainsFunc(rooms, func(r api.Room) bool { return r.Name == "#general" && r.Retention == 30*86400 }) {
		t.Fatalf("a refused setting changed alice's #general: %+v", rooms)
	}
	// A node that comes later learns it when it catches up (the setting
	// comes first in the answer, over the real catch-up protocol).
	c := start(t, "carol", a.gossip())
	waitFor(t, "carol's #general keeps 30 days", 15*time.Second, func() bool {
		rooms, _ := c.n.Rooms(ctx)
		i := slices.IndexFunc(rooms, func(r api.Room) bool { return r.Name == "#general" && r.Joined })
		return i >= 0 && rooms[i].Retention == 30*86400
	})
}

// A late joiner catches up over the real catch-up protocol from a member
// that pruned a room: the room's setting first, then each author's
// events from the witness on, the skip over the deleted ones taken. No
// clock is faked: the pruned author's events are signed hours ago.
func TestLateJoinerSkipsWhatAMemberPruned(t *testing.T) {
	ctx := context.Background()
	a := start(t, "alice")
	if _, err := a.n.JoinRoom(ctx, api.RoomRequest{Room: "#ops"}); err != nil {
		t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	zed := mesh.IDFromPublicKey(pub)
	now := time.Now()
	var zs []*message.Envelope
	ev := func(kind, body string, at time.Time) {
		env := &message.Envelope{Author: zed, AuthorName: "zed", Conversation: "#ops", Seq: uint64(len(zs) + 1),
			Time: message.Timestamp{Wall: at.UnixNano()}, Kind: kind, Body: body}
		if _, err := message.Seal(env, key); err != nil {
			t.Fatal(err)
		}
		zs = append(zs, env)
	}
	ev(message.KindJoin, "", now.Add(-3*time.Hour))
	for i := range 4 {
		ev(message.KindText, fmt.Sprint("old ", i), now.Add(-3*time.Hour+time.Duration(i+1)*time.Minute))
	}
	ev(message.KindRetention, "7200", now.Add(-150*time.Minute))
	ev(message.KindText, "still kept", now.Add(-time.Minute))
	for i, err := range a.n.chat.DeliverBatch(ctx, zs) {
		if err != nil {
			t.Fatalf("zed's event %d: %v", i+1, err)
		}
	}
	waitFor(t, "alice pruned zed's old events", 10*time.Second, func() bool {
		page, err := a.n.chat.Page(ctx, "#ops", zed, 0, 100)
		return err == nil && len(page) == 2 // the witness (the setting) and the message kept
	})

	b := start(t, "bob", a.gossip())
	if _, err := b.n.JoinRoom(ctx, api.RoomRequest{Room: "#ops"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob caught up on zed past the deleted events", 15*time.Second, func() bool {
		return slices.Contains(roomTexts(t, b, "#ops"), "zed:text:still kept")
	})
	for _, line := range roomTexts(t, b, "#ops") {
		if strings.Contains(line, "old ") || strings.Contains(line, ":retention:") {
			t.Fatalf("bob shows %q, past the retention", line)
		}
	}
	rooms, _ := b.n.Rooms(ctx)
	if i := slices.IndexFunc(rooms, func(r api.Room) bool { return r.Name == "#ops" }); i < 0 || rooms[i].Retention != 7200 || rooms[i].MembersTotal != 3 {
		t.Fatalf("bob's #ops: %+v", rooms)
	}
	if got, want := roomTexts(t, b, "#ops"), roomTexts(t, a, "#ops"); !slices.Equal(got, want) {
		t.Fatalf("bob shows %q, alice %q", got, want)
	}
}
