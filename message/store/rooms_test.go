package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

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
	if h := heads[alice.id]; err != nil || h.N != 6 || !h.Member || h.Last != at(6) {
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

// Pruning deletes each author's events older than the cutoff but the
// newest of them (the witness, marked read), leaves heads, the
// directory and newer events alone, and a page asked from the start
// begins at the witness.
func TestPruneRoomKeepsAWitnessPerAuthor(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var w RoomWrite
	for _, p := range []person{alice, bob} {
		join := p.roomEv(t, "#ops", 1, at(1), message.KindJoin, "")
		w.Events = append(w.Events, RoomEvent{Env: join})
		w.Directory = append(w.Directory, join)
		for i := uint64(2); i <= 6; i++ {
			w.Events = append(w.Events, RoomEvent{Env: p.roomEv(t, "#ops", i, at(float64(i)), message.KindText, fmt.Sprint(p.name, i))})
		}
		w.Heads = append(w.Heads, RoomHeadUpdate{Room: "#ops", Author: p.id, Head: RoomHead{N: 6, Member: true}})
	}
	// Evidence of a reused number, as old as anything pruned.
	w.Conflicts = append(w.Conflicts, RoomConflict{Env: alice.roomEv(t, "#ops", 2, at(2), message.KindText, "the other 2"), From: bob.id})
	// Another room's old events are not this prune's.
	other := alice.roomEv(t, "#dev", 1, at(1), message.KindJoin, "")
	w.Events = append(w.Events, RoomEvent{Env: other})
	if err := s.WriteRooms(ctx, w); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneRoom(ctx, "#ops", at(4.5).Wall)
	if err != nil || n != 6 {
		t.Fatalf("pruned %d, %v; want 6 (seq 1..3 of each author)", n, err)
	}
	for _, p := range []person{alice, bob} {
		page, err := s.RoomPage(ctx, "#ops", p.id, 0, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, b := range page {
			env, err := message.Open(b)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, env.Seq)
		}
		if fmt.Sprint(seqs) != "[4 5 6]" {
			t.Fatalf("%s's events after pruning: %v, want [4 5 6]", p.name, seqs)
		}
	}
	heads, err := s.RoomHeads(ctx, "#ops")
	if err != nil || heads[alice.id].N != 6 || !heads[alice.id].Member || heads[alice.id].Last != at(6) {
		t.Fatalf("heads after pruning: %+v, %v", heads, err)
	}
	if dir, err := s.Directory(ctx, "#ops", ""); err != nil || len(dir) != 2 {
		t.Fatalf("directory after pruning: %v, %v", dir, err)
	}
	if ev, err := s.RoomConflicts(ctx, "#ops"); err != nil || len(ev) != 1 {
		t.Fatalf("evidence after pruning: %d, %v; want the one kept", len(ev), err)
	}
	if unread, err := s.RoomUnreadIn(ctx, "#ops"); err != nil || unread != 4 {
		t.Fatalf("unread %d, %v: want 4 (seq 5, 6 of each; the witnesses are read)", unread, err)
	}
	if id, _ := s.RoomEventAt(ctx, "#dev", alice.id, 1); id != other.ID {
		t.Fatal("pruning #ops deleted #dev's event")
	}
	// Again at the same cutoff: the witnesses stay.
	if n, err := s.PruneRoom(ctx, "#ops", at(4.5).Wall); err != nil || n != 0 {
		t.Fatalf("second prune deleted %d, %v", n, err)
	}
}

// A room keeps the settings that still matter to its cutoff: the latest
// 16, and before them those from the one that brought the cutoff
// furthest while it still does, at most MaxRetentionEvents.
func TestRoomRetentionsKeepsWhatMatters(t *testing.T) {
	ctx := context.Background()
	write := func(s *Store, room string, seq uint64, wall time.Time, secs uint64) *message.Envelope {
		t.Helper()
		env := alice.roomEv(t, room, seq, message.Timestamp{Wall: wall.UnixNano()}, message.KindRetention, fmt.Sprint(secs))
		if err := s.WriteRooms(ctx, RoomWrite{Retention: []RoomRetention{{Env: env, Seconds: secs}}}); err != nil {
			t.Fatal(err)
		}
		return env
	}
	s := openTest(t)
	// Long ago, each replaced a second later: the one in force now
	// brings the cutoff furthest, and only the latest 16 are kept.
	old := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var all []*message.Envelope
	for i := range 20 {
		all = append(all, write(s, "#a", uint64(i+1), old.Add(time.Duration(i)*time.Second), 3600))
	}
	rs, err := s.RoomRetentions(ctx, "#a")
	if err != nil || len(rs) != retentionLatest || rs[0].Env.ID != all[4].ID || rs[len(rs)-1].Env.ID != all[19].ID {
		t.Fatalf("#a keeps %d settings (%v), want the latest %d", len(rs), err, retentionLatest)
	}
	// An hour's retention, then "for ever" again and again: what the
	// hour let members delete is remembered, so all are kept, up to the
	// cap.
	now := time.Now()
	hour := write(s, "#b", 1, now.Add(-time.Hour), 3600)
	for i := range 30 {
		write(s, "#b", uint64(i+2), now.Add(-time.Hour+time.Duration(i+1)*time.Second), 0)
	}
	if rs, err := s.RoomRetentions(ctx, "#b"); err != nil || len(rs) != 31 || rs[0].Env.ID != hour.ID {
		t.Fatalf("#b keeps %d settings (%v), want all 31 from the hour's on", len(rs), err)
	}
	for i := range MaxRetentionEvents {
		write(s, "#b", uint64(i+32), now.Add(-time.Hour+time.Duration(i+31)*time.Second), 0)
	}
	// Past the cap the hour's setting goes, and with it the reason to
	// keep the rest: the latest 16.
	if rs, err := s.RoomRetentions(ctx, "#b"); err != nil || len(rs) != retentionLatest || rs[0].Env.ID == hour.ID {
		t.Fatalf("#b keeps %d settings (%v), want the latest %d once the cap dropped the hour's", len(rs), err, retentionLatest)
	}
	if rooms, err := s.RetentionRooms(ctx); err != nil || fmt.Sprint(rooms) != "[#a #b]" {
		t.Fatalf("rooms with a retention: %v, %v", rooms, err)
	}
}

// A prune in the same transaction as the rows it deletes (group commit
// puts a room's writes and its prune together) left the full-text index
// holding 'delete's of bodies it had not been given yet: SQLite then
// reported the database corrupt on the next write.
func TestPruneInTheTransactionThatWroteTheRows(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	err := s.write(ctx, func(tx *wtx) error {
		for i := uint64(1); i <= 4; i++ {
			r, err := newRow(alice.roomEv(t, "#ops", i, at(float64(i)), message.KindText, fmt.Sprint("searchable ", i)), false)
			if err != nil {
				return err
			}
			if _, err := insert(tx, r, time.Now()); err != nil {
				return err
			}
		}
		ws, err := roomWitnesses(ctx, tx, "#ops", at(3.5).Wall)
		if err != nil {
			return err
		}
		n, err := pruneRoom(tx, "#ops", ws, pruneBatch)
		if err == nil && n != 2 {
			err = fmt.Errorf("pruned %d, want 2", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"); err != nil {
		t.Fatalf("full-text index after the prune: %v", err)
	}
	recs, err := s.History(ctx, Query{Search: "searchable"})
	if err != nil || len(recs) != 2 {
		t.Fatalf("search finds %d, %v; want the 2 kept", len(recs), err)
	}
}

// A prune of more than pruneBatch events takes several transactions and
// deletes them all, but the witnesses.
func TestPruneRoomInBatches(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const per = pruneBatch + 7
	for _, p := range []person{alice, bob} {
		var w RoomWrite
		for i := uint64(1); i <= per; i++ {
			w.Events = append(w.Events, RoomEvent{Env: p.roomEv(t, "#big", i, at(float64(i)/1000), message.KindText, "x")})
		}
		if err := s.WriteRooms(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneRoom(ctx, "#big", at(float64(per)).Wall)
	if err != nil || n != 2*(per-1) {
		t.Fatalf("pruned %d, %v; want %d", n, err, 2*(per-1))
	}
	for _, p := range []person{alice, bob} {
		if page, _ := s.RoomPage(ctx, "#big", p.id, 0, 10, 0); len(page) != 1 {
			t.Fatalf("%s: %d events left, want the witness", p.name, len(page))
		}
	}
}
