package store

import (
	"fmt"
	"slices"
	"strings"
)

// ApplicationID is written into the header of every lanchat history
// database (PRAGMA application_id, bytes 68-71): "LNCH".
const ApplicationID = 0x4c4e4348

// migration is one step of the schema. Each runs in its own transaction
// and sets PRAGMA user_version to its version; they are never edited once
// released, only added to.
type migration struct {
	version int
	sql     string
	// objects are the names of the tables, indexes and triggers the step
	// creates (FTS5 shadow tables and automatic indexes included), so that
	// Open can tell a lanchat database from a foreign one.
	objects []string
	// probes are cheap queries that each walk one path from the root of
	// one of the step's b-trees to a leaf; Open runs them to notice a
	// truncated or garbled file before using it.
	probes []string
}

// migrations returns the schema's steps in order.
func migrations() []migration {
	return []migration{{
		version: 1,
		sql: `
CREATE TABLE messages (
	-- seq is wall/1000 (the HLC wall time in microseconds) or, when that
	-- is taken, a free integer above it: rowid order follows time. See
	-- the package doc.
	seq          INTEGER PRIMARY KEY,
	wall         INTEGER NOT NULL, -- HLC wall, unix ns
	logical      INTEGER NOT NULL, -- HLC logical counter
	author       TEXT NOT NULL,
	id           TEXT NOT NULL,
	conversation TEXT NOT NULL,
	kind         TEXT NOT NULL,
	outgoing     INTEGER NOT NULL, -- 1: we wrote it
	state        INTEGER NOT NULL, -- 0 queued, 1 sent, 2 delivered, 3 read
	stored_at    INTEGER NOT NULL, -- local unix ns
	recipient    TEXT NOT NULL,
	author_name  TEXT NOT NULL,
	body         TEXT NOT NULL,
	sealed       BLOB NOT NULL,    -- the signed envelope as it travels
	peer         TEXT GENERATED ALWAYS AS (CASE WHEN outgoing THEN recipient ELSE author END) VIRTUAL,
	UNIQUE (id, author)
) STRICT;

-- A direct conversation's history, newest first.
CREATE INDEX messages_peer ON messages (peer, wall, logical) WHERE conversation = '';

-- The outbox: outgoing messages not yet delivered.
CREATE INDEX messages_outbox ON messages (peer, wall, logical) WHERE outgoing = 1 AND state < 2;

-- Full-text search over bodies. The code that stores messages indexes
-- their bodies in the same transaction, in ascending seq order; an insert
-- trigger would open a statement transaction per message, at each of
-- which FTS5 writes out what it has buffered. The triggers below keep
-- deletions and changed bodies in sync. columnsize = 0: no per-document
-- sizes, which only ranking by relevance (bm25) needs.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	body, content = 'messages', content_rowid = 'seq',
	tokenize = 'unicode61 remove_diacritics 2', columnsize = 0
);
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF seq, body ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
	INSERT INTO messages_fts (rowid, body) VALUES (new.seq, new.body);
END;
`,
		objects: []string{
			"messages", "sqlite_autoindex_messages_1", "messages_peer", "messages_outbox",
			"messages_fts", "messages_fts_data", "messages_fts_idx", "messages_fts_config",
			"messages_ad", "messages_au",
		},
		probes: []string{
			"SELECT seq FROM messages ORDER BY seq DESC LIMIT 1",
			"SELECT seq FROM messages ORDER BY seq LIMIT 1",
			"SELECT id FROM messages INDEXED BY sqlite_autoindex_messages_1 ORDER BY id DESC LIMIT 1",
			"SELECT peer FROM messages INDEXED BY messages_peer WHERE conversation = '' ORDER BY peer DESC LIMIT 1",
			"SELECT peer FROM messages INDEXED BY messages_outbox WHERE outgoing = 1 AND state < 2 ORDER BY peer DESC LIMIT 1",
			"SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'lanchat' LIMIT 1",
		},
	}, {
		version: 2,
		sql: `
-- Rooms. A room event is a row of messages whose conversation is the
-- room's name and whose rseq numbers it among its author's events in
-- that room (1, 2, …; 0 for direct messages). This node holds, for each
-- room and author, the events 1..n and no others: room_heads says n.
ALTER TABLE messages ADD COLUMN rseq INTEGER NOT NULL DEFAULT 0;

-- One author's events in a room, by sequence: catch-up pages and the
-- check that a sequence number is not used twice.
CREATE UNIQUE INDEX messages_room_seq ON messages (conversation, author, rseq) WHERE conversation != '';

-- A room's history, newest first.
CREATE INDEX messages_room ON messages (conversation, wall, logical) WHERE conversation != '';

-- Unread counts: received messages not yet read.
CREATE INDEX messages_unread ON messages (conversation) WHERE outgoing = 0 AND state < 3;

-- For each room and author: how many of their events this node holds
-- (all of 1..n), and whether their last membership event is a join.
CREATE TABLE room_heads (
	room   TEXT NOT NULL,
	author TEXT NOT NULL,
	n      INTEGER NOT NULL,
	member INTEGER NOT NULL,
	PRIMARY KEY (room, author)
) STRICT, WITHOUT ROWID;

-- Who is in which room, for every room this node has heard of, joined
-- or not: each author's latest membership event (the signed envelope).
CREATE TABLE room_directory (
	room   TEXT NOT NULL,
	author TEXT NOT NULL,
	rseq   INTEGER NOT NULL,
	joined INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	PRIMARY KEY (room, author)
) STRICT, WITHOUT ROWID;
-- How many rooms one author has told us of: a stranger's quota.
CREATE INDEX room_directory_author ON room_directory (author);

-- Evidence: a second event an author signed under a sequence number
-- already taken, kept and never shown.
CREATE TABLE room_conflicts (
	room        TEXT NOT NULL,
	author      TEXT NOT NULL,
	rseq        INTEGER NOT NULL,
	id          TEXT NOT NULL,
	from_peer   TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	sealed      BLOB NOT NULL,
	PRIMARY KEY (room, author, rseq, id)
) STRICT, WITHOUT ROWID;
`,
		objects: []string{"messages_room_seq", "messages_room", "messages_unread", "room_heads", "room_directory", "room_directory_author", "room_conflicts"},
		probes: []string{
			"SELECT rseq FROM messages INDEXED BY messages_room_seq WHERE conversation != '' ORDER BY conversation DESC LIMIT 1",
			"SELECT n FROM room_heads ORDER BY room DESC LIMIT 1",
			"SELECT rseq FROM room_directory ORDER BY room DESC LIMIT 1",
			"SELECT rseq FROM room_conflicts ORDER BY room DESC LIMIT 1",
		},
	}, {
		version: 3,
		sql: `
-- A room's retention: the room.retention events of each room that still
-- matter to its cutoff (a suffix of them in room order, at most
-- MaxRetentionEvents), kept apart from the log so that pruning the log
-- never loses the setting in force, and so that a member catching up can
-- be handed them before the events they let it skip. seconds is the body
-- parsed: 0 keeps everything.
CREATE TABLE room_retention (
	room    TEXT NOT NULL,
	wall    INTEGER NOT NULL,
	logical INTEGER NOT NULL,
	author  TEXT NOT NULL,
	id      TEXT NOT NULL,
	seconds INTEGER NOT NULL,
	sealed  BLOB NOT NULL,
	PRIMARY KEY (room, wall, logical, author, id)
) STRICT, WITHOUT ROWID;
`,
		objects: []string{"room_retention"},
		probes:  []string{"SELECT seconds FROM room_retention ORDER BY room DESC LIMIT 1"},
	}, {
		version: 4,
		// claimed_wall: the author's wall time (unix ns) of a received
		// message that is ordered by its arrival instead, because the
		// author's clock was too far ahead of ours; NULL for every other.
		sql: `ALTER TABLE messages ADD COLUMN claimed_wall INTEGER;`,
	}}
}

// latestVersion is the schema version this code writes.
func latestVersion() int {
	ms := migrations()
	return ms[len(ms)-1].version
}

// objectsAt returns the names of the schema objects of version v.
func objectsAt(v int) []string {
	var names []string
	for _, m := range migrations() {
		if m.version <= v {
			names = append(names, m.objects...)
		}
	}
	return names
}

// dbInfo is what a database says about itself.
type dbInfo struct {
	appID   int64
	version int
	objects []string // names in sqlite_schema, without SQLite's internal sqlite_ tables
}

// isEmpty reports whether the database is a blank SQLite file (or a file
// of 0 bytes): nothing written yet, by anyone.
func (i dbInfo) isEmpty() bool {
	return i.appID == 0 && i.version == 0 && len(i.objects) == 0
}

// check tells whether the database can be used as lanchat's history.
func (i dbInfo) check() error {
	if i.isEmpty() {
		return nil
	}
	if i.appID != ApplicationID {
		return fmt.Errorf("%w: sqlite database of another application (application_id %#x)", ErrNotLanchat, i.appID)
	}
	if i.version > latestVersion() {
		return fmt.Errorf("%w: schema version %d, this lanchat knows up to %d", ErrNewerSchema, i.version, latestVersion())
	}
	known := objectsAt(i.version)
	var foreign []string
	for _, o := range i.objects {
		if !slices.Contains(known, o) {
			foreign = append(foreign, o)
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%w: unknown tables or indexes %s", ErrNotLanchat, strings.Join(foreign, ", "))
	}
	var missing []string
	for _, o := range known {
		if !slices.Contains(i.objects, o) {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: schema version %d lacks %s", ErrCorrupt, i.version, strings.Join(missing, ", "))
	}
	return nil
}
