// Package roomsync lets the members of a room catch up with each other,
// with no server: a client sends a peer its vector for the room (how
// many of each author's events it holds) and the peer streams back, in
// pages, every event it holds beyond that vector. The cost of an answer
// grows with what is missing, not with the size of the room. A client
// can also ask a peer which rooms it has joined (its index).
//
// This comment is the wire specification of the protocol; PROTOCOL.md
// copies it. All integers are big-endian and unsigned.
//
// # Rooms as vectors
//
// A room event is a version 2 envelope (section 5): its conversation is
// the room name, and its seq numbers it among its author's events in that
// room, 1 for the first. Every node holds, of each author, a prefix 1..n
// of that author's events in the room, never one with a gap; so what a
// node holds of a room is said exactly by its vector, author id → n
// (but for what a retention let it delete: below).
//
// A room may have a retention (room.retention events, section 5). Its
// members then delete the events older than the room's cutoff, except,
// of each author, the newest of those: the witness w. (This
// implementation deletes only what is 10 minutes older than its cutoff,
// so that a member whose clock is behind by less still finds the
// witnesses past its own.) Such a member holds w..n of the author, and
// its vector still says n. The cutoff is
// computed from the room's retention events s_1..s_k in room order (a
// suffix of them: see STATE), with durations R_i and times t_i: the largest of t_{i+1} − R_i
// (t_{k+1} being now) over the settings with R_i > 0; none, if there is
// none. It is a high-water mark: a lengthened retention does not bring
// back what the shorter one let members delete.
//
// # Streams
//
// Catch-up travels on mesh streams (section 4) whose ALPN protocol is
// "lanchat/sync/1". The dialling side (the client) sends requests, one at
// a time, each answered completely before the next is sent; the accepting
// side (the server) answers them. A client usually sends one request and
// closes the stream after the answer, with a CLOSE frame "done".
//
// # Frames
//
// Every frame is a 7-byte header and a payload, as on message streams but
// with its own magic:
//
//	offset  size  field
//	0       2     magic: 0x4c 0x53 ("LS")
//	2       1     type (below)
//	3       4     payload length n
//	7       n     payload
//
//	type  name    direction          payload limit
//	0x01  PULL    client → server    245828 bytes (a vector of 4096 authors)
//	0x02  INDEX   client → server    0
//	0x03  CLOSE   either way         255
//	0x04  HEAD    server → client    68
//	0x05  PAGE    server → client    1048576 (MaxPage)
//	0x06  DONE    server → client    0
//	0x07  REFUSE  server → client    256
//	0x08  STATE   server → client    1048576 (MaxPage)
//
// The length is checked against the type's limit before the payload is
// read. A wrong magic, an unknown type, a length over the limit, a frame
// of the wrong direction, a payload that does not parse exactly, or a
// frame out of its place ends the stream: the side that notices sends a
// CLOSE frame with the reason and closes. Once a frame's first byte has
// arrived the whole frame must arrive within 30 s (FrameTimeout). A server
// closes a stream on which no request has come for 30 s (IdleTimeout,
// reason "idle"); a client gives up on a server that sends nothing for
// 30 s (ResponseTimeout).
//
// PULL (client to server) asks for the events of one room beyond the
// client's vector:
//
//	offset  size  field
//	0       1     room name length r, 2 to 65
//	1       r     room name, '#' and [a-z0-9._-] ("#general")
//	1+r     2     number of vector entries k, at most 4096 (MaxVectorLen)
//	3+r     60k   entries: author id (52 bytes, ASCII base32) and count n (8 bytes)
//
// Entries are in strictly ascending order of author id and have n >= 1; an
// author the client holds nothing of is left out. A server may allow fewer
// entries (Config.MaxAuthors) and ends the stream on a larger vector. A
// client that holds events of more than 4096 authors (anyone may join a
// room, with as many keys as they like) names the 4096 of whom it holds
// most, ties broken by ascending id; the others' events come again from
// seq 1, and it keeps those it holds already.
//
// The answer to a PULL is, for every author of whom the server holds more
// events than the client's vector says (also authors the vector leaves
// out), in ascending order of author id: a HEAD frame, then PAGE frames
// carrying that author's events, in seq order, until all announced have
// come. A DONE frame ends the answer. A client that holds everything the
// server does gets DONE alone. A server that cannot read an author's
// events before it has announced them leaves that author out of the
// answer (so one author cannot stop the rest); once announced, it ends
// the answer with REFUSE code 3. For authors of whom the client holds more
// than the server, the server may pull from the client in turn (this
// implementation notes them before it sends DONE).
//
// HEAD (server to client) announces the events of one author that follow:
//
//	offset  size  field
//	0       52    author id
//	52      8     after: the count the client's vector gave for this author (0 if none)
//	60      8     until: the server's count, greater than after
//
// The events after+1 .. until of that author follow in PAGE frames; the
// client checks that after is what it holds (or what earlier pages of this
// answer brought). A server that pruned the author's events beyond after
// starts at its witness w instead (after+1 < w <= until), and the events
// w .. until follow: the skip. The client hands the first event to its
// store, which takes the skip only if that event is older than the
// room's cutoff as the client knows it (the STATE frame came first) and
// later than the author's event it holds (if any); since an author's
// times grow with its sequence, every event skipped is older still, and
// no server can hide a retained event behind a skip. Otherwise the store
// refuses it and the pull ends. The witness becomes the client's start
// of that author's log; events below it offered later are ignored.
//
// PAGE (server to client) carries sealed envelopes:
//
//	offset  size  field
//	0       2     count c, at least 1
//	2       ...   c entries: envelope length e (4 bytes, at most 66205) and e bytes of sealed envelope
//
// Nothing follows the last entry. In the answer to a PULL, the envelopes
// of a PAGE are the next events of the author of the last HEAD, in seq
// order, and no more than it announced (only the first PAGE after a HEAD
// may start above after+1, as said). The client checks each before it
// keeps any of the page: the envelope opens (layout and signature, section
// 5), it is a room event (version 2) of the requested room, its author is
// the announced one, and its seq is the next expected. A page that fails
// is not kept, and the client ends the stream with a CLOSE naming the
// fault. A server sends at most 256 events (Config.PageEvents) and,
// beyond the first envelope, at most 1 MiB (Config.PageBytes) per PAGE.
//
// DONE (server to client) ends an answer; its payload is empty. It is
// refused while events a HEAD announced are still to come.
//
// STATE (server to client), at most once per answer and before its first
// HEAD, carries the room's retention events the server keeps, at most
// 256 (MaxState), in room order, in the layout of a PAGE: a suffix of the
// room's settings, from the one that brought the cutoff furthest while
// it still does (at the latest, the 16th from the end). A server sends
// it only when it holds at least one and the answer has a HEAD. The
// client checks each: it opens, it is a version 2 event of the
// requested room, of kind room.retention.
// Its store takes each setting whatever its place in its author's
// sequence (a setting counts before its author's events are caught up
// on; the events themselves follow in the answer or a later one), so the
// skips after it are judged by it. A node of a version before STATE
// ends the stream on it: rooms without a retention are served to it as
// before, and a room with one it could not keep anyway.
//
// REFUSE (server to client) answers a request that is not served, or ends
// an answer that cannot be completed:
//
//	offset  size  field
//	0       1     code: 1 not authorized, 2 rate limited, 3 unavailable
//	1       r     reason, UTF-8, r <= 255, for people and logs
//
// Code 1: the server does not share that room with the client (it is not
// a member, or the client is not). Code 2: the client asked too often; a
// server allows each peer, on all streams together, a burst of 64 requests
// (PULL or INDEX) and 4 a second after it (Config.RequestBurst,
// RequestRate), and 8 being answered at once (Config.MaxConcurrent), and
// refuses the rest without serving them. Code 3: the
// server cannot read its store; what the client kept of the answer so far
// stays valid (it is a prefix of each author's events). The stream stays
// open after a REFUSE.
//
// INDEX (client to server, empty payload) asks for the server's own latest
// membership event — a room.join or room.leave it authored — of every
// room it has ever joined, so that a node can learn which rooms its peers
// are in. It is answered to every peer (within the rate limit), member or
// not. The answer is PAGE frames of those envelopes, then DONE, or a
// REFUSE. The client checks each: it opens, it is a version 2 room event
// authored by the server, of kind room.join or room.leave, and no room
// comes twice; it takes at most 4096 (Config.MaxIndex).
//
// CLOSE (either way): the payload is the reason, UTF-8, at most 255 bytes
// ("done", "idle", "shutting down", a protocol error). The sender closes
// the stream after it; the receiver closes too and does not answer.
//
// # Versions
//
// An incompatible change gets a new ALPN name ("lanchat/sync/2").
//
// # Example exchange
//
// bob (key seed 32 bytes 0x02) holds alice's (seed 0x01) first event in
// #general, her join, and his own join; alice holds her join and her
// second event, "hi all", but not bob's join. bob pulls #general from
// alice; alice answers with her second event, and learns that bob is ahead
// on his own events. Every byte on the stream, after TLS:
//
//	# bob → alice: PULL frame
//	4c 53                                            frame magic "LS"
//	01                                               frame type 0x01 PULL
//	00 00 00 83                                      payload length 131
//	08                                               room name length 8
//	23 67 65 6e 65 72 61 6c                          room name "#general"
//	00 02                                            2 vector entries
//	47 52 32 51 37 47 46 35 4c 48 36 50 5a 46 44 4e  author alice (GR2Q7GF5LH6PZFDNURNKVPUTHPQVJJFVBFHBYSV7IKDGKBPTZF7A)
//	55 52 4e 4b 56 50 55 54 48 50 51 56 4a 4a 46 56
//	42 46 48 42 59 53 56 37 49 4b 44 47 4b 42 50 54
//	5a 46 37 41
//	00 00 00 00 00 00 00 01                          count 1
//	4e 49 34 41 48 56 50 51 4c 47 49 43 55 48 44 4e  author bob (NI4AHVPQLGICUHDNV66JXJDSSIJPPSVMBBRUZQ5OO2ZHKKPQHATQ)
//	56 36 36 4a 58 4a 44 53 53 49 4a 50 50 53 56 4d
//	42 42 52 55 5a 51 35 4f 4f 32 5a 48 4b 4b 50 51
//	48 41 54 51
//	00 00 00 00 00 00 00 01                          count 1
//
//	# alice → bob: HEAD frame
//	4c 53                                            frame magic "LS"
//	04                                               frame type 0x04 HEAD
//	00 00 00 44                                      payload length 68
//	47 52 32 51 37 47 46 35 4c 48 36 50 5a 46 44 4e  author alice
//	55 52 4e 4b 56 50 55 54 48 50 51 56 4a 4a 46 56
//	42 46 48 42 59 53 56 37 49 4b 44 47 4b 42 50 54
//	5a 46 37 41
//	00 00 00 00 00 00 00 01                          after 1
//	00 00 00 00 00 00 00 02                          until 2
//
//	# alice → bob: PAGE frame
//	4c 53                                            frame magic "LS"
//	05                                               frame type 0x05 PAGE
//	00 00 00 e6                                      payload length 230
//	00 01                                            count 1
//	00 00 00 e0                                      envelope length 224
//	4c 45 02 01 23 45 67 89 ab cd ef 01 23 45 67 89  envelope (section 5, version 2): alice's event 2 in #general, "hi all",
//	…                                                208 bytes more, ending with alice's signature
//
//	# alice → bob: DONE frame; alice's Source learns (Ahead) that bob holds more of bob's events
//	4c 53                                            frame magic "LS"
//	06                                               frame type 0x06 DONE
//	00 00 00 00                                      payload length 0
//
//	# bob → alice: CLOSE frame, and bob closes the stream
//	4c 53                                            frame magic "LS"
//	03                                               frame type 0x03 CLOSE
//	00 00 00 04                                      payload length 4
//	64 6f 6e 65                                      reason "done"
//
//	# had bob asked for a room alice does not share with him: REFUSE frame
//	4c 53                                            frame magic "LS"
//	07                                               frame type 0x07 REFUSE
//	00 00 00 15                                      payload length 21
//	01                                               code 1 not authorized
//	6e 6f 74 20 61 20 6d 65 6d 62 65 72 20 6f 66 20  reason "not a member of #ops"
//	23 6f 70 73
package roomsync
