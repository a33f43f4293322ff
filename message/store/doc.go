// Package store keeps a node's message history and outbox in an embedded
// SQLite database (modernc.org/sqlite: pure Go, no cgo) in the data
// directory. Every message sent or received is stored here before anyone
// is told it was: a received one before its acknowledgement goes out (the
// message service's Deliver hook calls AddReceived and acknowledges only
// after it returns nil), a sent one before the command or the UI reports
// it sent (AddOutgoing). Messages to a peer that is offline wait in the
// outbox, with the sealed bytes that are re-sent unchanged, until the peer
// acknowledges them, across restarts.
//
// # Schema
//
// One table holds every message, one row each:
//
//	messages
//	  seq          INTEGER PRIMARY KEY   where the row sits; see "Order" below
//	  wall         INTEGER               HLC wall time of the author, unix ns
//	  logical      INTEGER               HLC logical counter
//	  author, id   TEXT                  UNIQUE (id, author): storing twice stores once
//	  conversation TEXT                  "" for direct messages, the room ("#general") for a room's events
//	  kind         TEXT                  "text", ...
//	  outgoing     INTEGER               1 if we wrote it
//	  state        INTEGER               0 queued, 1 sent, 2 delivered, 3 read
//	  stored_at    INTEGER               when this node stored it, unix ns
//	  recipient, author_name, body TEXT
//	  sealed       BLOB                  the signed envelope, byte for byte as it travels
//	  peer         TEXT, generated       recipient if outgoing, else author
//	  rseq         INTEGER               a room event's number among its author's in the room; 0 for direct
//	messages_peer     INDEX (peer, wall, logical) WHERE conversation = ''   a conversation's history
//	messages_outbox   INDEX (peer, wall, logical) WHERE outgoing = 1 AND state < 2
//	messages_room     INDEX (conversation, wall, logical) WHERE conversation != ''   a room's history
//	messages_room_seq UNIQUE INDEX (conversation, author, rseq) WHERE conversation != ''
//	messages_unread   INDEX (conversation) WHERE outgoing = 0 AND state < 3
//	messages_fts      FTS5 (body), external content = messages, rowid = seq
//
// Rooms (schema 2). A room event is a row of messages. For every room and
// author, this node holds that author's events 1..n and no others, and
// room_heads (room, author, n, member) says n and whether the author's
// last membership event is a join: the vector catch-up starts from, kept
// in the transaction that adds the events. room_directory (room, author,
// rseq, joined, sealed) keeps each author's latest membership event of
// every room heard of, joined or not: who is in which room.
// room_conflicts keeps, as evidence, events whose author reused a number
// for other content; they are never shown. WriteRooms writes all of it in
// one transaction; the chat service decides what goes in (see
// message/chat). A room's own messages never enter the outbox: members
// who miss one fetch it from any other.
//
// Retention (schema 3). room_retention (room, wall, logical, author, id,
// seconds, sealed) keeps each room's room.retention events that still
// matter (a suffix of them, at most MaxRetentionEvents), apart from the log so that pruning never loses
// the setting in force. PruneRoom deletes a room's events older than a
// cutoff but, per author, the newest of them (the witness, marked read):
// the author's events held are then witness..n, and room_heads is
// unchanged. Conflicts and the directory are never pruned.
//
// Clocks (schema 4). A received direct message whose author's clock was
// too far ahead is stored at its arrival (wall, logical, seq), with the
// author's claim in claimed_wall (NULL for every other message), so that
// it sorts where it came; the signed envelope keeps the claim too.
//
// The outbox is not a table of its own but the outgoing rows not yet
// delivered, found through a partial index that holds only them: a
// message leaves the outbox by the same update that records its delivery,
// so the two can never disagree.
//
// Versions. PRAGMA application_id is ApplicationID ("LNCH") from the
// first write on, and PRAGMA user_version is the schema version. Schema
// changes are a list of migrations, each run in its own transaction that
// also sets user_version, so a crash during an upgrade leaves the file at
// the last complete version. Open refuses a file whose version is newer
// than this code knows (ErrNewerSchema), and leaves it as it was.
//
// # Order
//
// Conversations are shown in the order of message.Compare: the authors'
// hybrid logical clocks, then author id, then message id. A message's seq
// (its rowid, and its rowid in the full-text index) is wall/1000, the
// wall time in microseconds, or a free integer above that when taken
// (messages within one microsecond; see insertSQL). So seq >= wall/1000
// always, and a walk down seq visits messages roughly newest first: once
// the oldest of the newest N found has wall/1000 >= seq, nothing further
// down can be newer, and the walk stops. That makes "the newest 50 of all
// conversations" and "the newest 50 search matches" cost about 50 rows
// however large the history: FTS5 hands out matches in descending rowid
// order without sorting them. A conversation's history uses its index
// instead. Messages that arrive late (an outbox emptied after a week) or
// from a skewed clock sort where their clocks put them, not where they
// arrived; each author's own messages stay in the order written, as its
// clock only moves forward.
//
// # Search
//
// Query.Search matches messages whose body contains every word of the
// search text, in any order, ignoring case and diacritics (FTS5's
// unicode61 tokenizer), across all conversations. The text is never FTS5
// syntax: each word becomes a quoted phrase, so quotes, "*", "-", NEAR(,
// AND, OR and column filters are searched for literally (a word ending in
// "*" is a prefix), and no input is a syntax error. FuzzSearch checks it.
//
// # Durability
//
// The database is in WAL mode. Writes go through one writer goroutine
// that owns the only write connection and commits them in groups: every
// write submitted while a transaction runs joins the next one, so one
// commit, and one fsync, serves many callers. A call returns only after
// the transaction holding its write has committed, so "stored" means "in
// the log on disk".
//
// Synchronous FULL is the default: each commit fsyncs the log. A killed
// process (kill -9, a crash, an OOM kill) then loses nothing that was
// reported stored, and neither does a power cut or a kernel panic. With
// Options.Synchronous "NORMAL" the log is fsynced only at checkpoints: a
// killed process still loses nothing (the bytes are in the kernel's page
// cache once write(2) returned), but a power cut may lose the last
// commits, never corrupt the file (in practice the last half minute or
// so: what the kernel had not yet written back). FULL is the default
// because an acknowledgement is a promise to the sender, who then drops
// the message from its outbox: a message acknowledged and lost when a
// laptop's battery dies would be lost for good. Grouping keeps the cost
// of the fsyncs moderate: on the 2-core test machine 512 concurrent
// callers store about 21,000 messages/s with FULL and 30,000 with NORMAL;
// 64 callers about 15,000 and 22,000 (BenchmarkAddReceived).
// TestKilledProcessLosesNothing SIGKILLs a child process at random
// moments while it stores messages from several goroutines and checks
// that every message it reported is there.
//
// The log is checkpointed into the main file every 8000 pages (32 MB;
// SQLite's default of 1000 rewrote hot index pages eight times as
// often), and truncated to 64 MB after a checkpoint if it grew larger.
//
// A full disk fails the write with ErrDiskFull; the transaction is rolled
// back, everything stored before stays, and writes succeed again once
// there is room.
//
// # Several processes
//
// One node owns a data directory (a lock elsewhere sees to that), but a
// one-shot command such as "lanchat send" without a running node may open
// the database while another short-lived process has it open. WAL mode
// lets readers and the writer proceed together, and a busy timeout
// (Options.BusyTimeout, 5 s) makes a writer wait for the other process's
// write transaction instead of failing. The database's setup runs under
// the write lock, so two processes creating it at once agree.
//
// # Opening a file
//
// Open never writes to a file it will not use. A missing file is created
// (mode 0600), and so is used an empty one: a file of 0 bytes holds
// nothing that could be lost, and SQLite itself treats it as an empty
// database. Any other file is judged first by reading its 100-byte header
// with a plain read: not SQLite, or SQLite with another application_id
// (including none), is ErrNotLanchat; a malformed header is ErrCorrupt; a
// newer user_version is ErrNewerSchema. Then, unless a log file (-wal)
// shows the database in use, an immutable read-only connection, which
// reads the main file only and creates no -wal or -shm file, checks the
// tables (one this package does not know is ErrNotLanchat) and walks one
// path through each b-tree (truncated or garbled pages are ErrCorrupt).
// Only then is the file opened for writing, and the same checks run again
// under the write lock, now with the log, before anything is written.
// (A log left by a crash is applied by SQLite, as by any reader, so a
// refused file may have had its own log checkpointed into it.)
// Corruption deeper in the file shows when those pages are read, as
// ErrCorrupt; Check reads everything.
package store
