package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"lanchat/message"
)

// roomEv seals an event of p in room numbered seq.
func (p person) roomEv(t testing.TB, room string, seq uint64, ts message.Timestamp, kind, body string) *message.Envelope {
	t.Helper()
	env := &message.Envelope{AuthorName: p.name, Conversation: room, Seq: seq, Time: ts, Kind: kind, Body: body}
	if _, err := message.Seal(env, p.key); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestRoomWritesPagesHeadsAndHistory(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	join := alice.roomEv(t, "#ops", 1, at(1), message.KindJoin, "")
	var w RoomWrite
	w.Events = append(w.Events, RoomEvent{Env: join})
	for i := uint64(2); i <= 6; i++ {
		w.Events = append(w.Events, RoomEvent{Env: alice.roomEv(t, "#ops", i, at(float64(i)), message.KindText, fmt.Sprint("m", i))})
	}
	w.Heads = []RoomHeadUpdate{{Room: "#ops", Author: alice.id, Head: RoomHead{N: 6, Member: true}}}
	w.Directory = []*message.Envelope{join}
	if err := s.WriteRooms(ctx, w); err != nil {
		t.Fatal(err)
	}
	heads, err := s.RoomHeads(ctx, "#ops")
	if err != nil || heads[alice.id] != (RoomHead{N: 6, Member: true}) {
		t.Fatalf("heads %v, %v", heads, err)
	}
	page, err := s.RoomPage(ctx, "#ops", alice.id, 2, 3, 0)
	if err != nil || len(page) != 3 {
		t.Fatalf("page %d, %v", len(page), err)
	}
	for i, b := range page {
		env, err := message.Open(b)
		if err != nil || env.Seq != uint64(3+i) {
			t.Fatalf("page[%d]: seq %d, %v", i, env.Seq, err)
		}
	}
	if id, err := s.RoomEventAt(ctx, "#ops", alice.id, 4); err != nil || id != w.Events[3].Env.ID {
		t.Fatalf("event at 4: %q, %v", id, err)
	}
	recs, err := s.History(ctx, Query{Room: "#ops", Limit: 3})
	if err != nil || len(recs) != 3 || recs[2].Body != "m6" {
		t.Fatalf("room history: %v, %v", bodies(recs), err)
	}
	// A room's messages are no direct conversation's, and no outbox's.
	if recs, _ := s.History(ctx, Query{Peer: alice.id}); len(recs) != 0 {
		t.Fatalf("room messages in a direct conversation: %v", bodies(recs))
	}
	unread, err := s.RoomUnread(ctx)
	if err != nil || unread["#ops"] != 5 {
		t.Fatalf("unread %v, %v", unread, err)
	}
	dir, err := s.Directory(ctx, "", alice.id)
	if err != nil || len(dir) != 1 || !dir[0].Joined || dir[0].Seq != 1 {
		t.Fatalf("directory %+v, %v", dir, err)
	}
	// An older membership event does not replace a newer one.
	leave := alice.roomEv(t, "#ops", 7, at(7), message.KindLeave, "")
	if err := s.WriteRooms(ctx, RoomWrite{Directory: []*message.Envelope{leave}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRooms(ctx, RoomWrite{Directory: []*message.Envelope{join}}); err != nil {
		t.Fatal(err)
	}
	if dir, _ := s.Directory(ctx, "#ops", ""); len(dir) != 1 || dir[0].Joined {
		t.Fatalf("directory after leave then an old join: %+v", dir)
	}
	// A second event under a taken number is refused whole.
	dup := alice.roomEv(t, "#ops", 3, at(3), message.KindText, "forged")
	if err := s.WriteRooms(ctx, RoomWrite{Events: []RoomEvent{{Env: dup}}}); err == nil {
		t.Fatal("a second event under seq 3 was stored")
	}
	if err := s.WriteRooms(ctx, RoomWrite{Conflicts: []RoomConflict{{Env: dup, From: bob.id}}}); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.RoomConflicts(ctx, "#ops"); err != nil || len(cs) != 1 || cs[0].From != bob.id {
		t.Fatalf("conflicts %v, %v", cs, err)
	}
}

// A history written by schema 1 opens, is migrated, and keeps what it held.
func TestSchemaOneMigratesToRooms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	rawExec(t, path, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID), migrations()[0].sql, "PRAGMA user_version = 1")
	s := openAt(t, path, testOptions(t))
	ctx := context.Background()
	if _, err := s.AddReceived(ctx, bob.msg(t, alice, at(1), "from before")); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRooms(ctx, RoomWrite{Events: []RoomEvent{{Env: bob.roomEv(t, "#general", 1, at(2), message.KindJoin, "")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
}

func TestRoomUnreadInCountsOneRoom(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var w RoomWrite
	for i := uint64(1); i <= 3; i++ {
		kind := message.KindText
		if i == 1 {
			kind = message.KindJoin
		}
		w.Events = append(w.Events, RoomEvent{Env: bob.roomEv(t, "#a", i, at(float64(i)), kind, "")})
		w.Events = append(w.Events, RoomEvent{Env: carol.roomEv(t, "#b", i, at(float64(i)), kind, "")})
	}
	w.Events = append(w.Events, RoomEvent{Env: bob.roomEv(t, "#a", 4, at(4), message.KindText, "old"), Read: true})
	if err := s.WriteRooms(ctx, w); err != nil {
		t.Fatal(err)
	}
	all, err := s.RoomUnread(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"#a", "#b", "#c"} {
		n, err := s.RoomUnreadIn(ctx, room)
		if err != nil || n != all[room] {
			t.Fatalf("%s: %d unread, %v; RoomUnread says %d", room, n, err, all[room])
		}
	}
	if all["#a"] != 2 || all["#b"] != 2 {
		t.Fatalf("unread %v, want 2 in each", all)
	}
}
