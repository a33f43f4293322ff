// Package message carries lanchat's chat messages between peers: the signed
// envelope a message travels in, the frames that carry envelopes and their
// acknowledgements over a mesh stream, and a Service that sends with
// acknowledgement and receives with de-duplication. The outbox, rooms and
// the history store build on it: Config.Deliver is where a store makes a
// received message durable before it is acknowledged,
// Service.SendEnvelope re-sends a message sealed earlier, and
// Service.SendEnvelopeTo sends a room event to one member.
//
// This comment is the wire specification of the protocol; PROTOCOL.md
// copies it. All integers are big-endian and unsigned unless noted.
//
// # Streams
//
// Messages travel on mesh streams: mutually authenticated TLS 1.3
// connections whose ALPN protocol is "lanchat/msg/1" and whose remote peer
// id (base32 SHA-256 of its Ed25519 public key) mesh has verified. The
// dialling side (the client) sends MSG frames; the accepting side (the
// server) answers each with an ACK frame. A peer keeps at most one stream
// to each other peer for its own messages and reuses it; messages the other
// way use a stream the other peer dials. Either side may send a CLOSE
// frame before closing. Any other frame, a frame of the wrong direction,
// or bytes that are not a frame end the stream.
//
// # Frames
//
// Every frame is a 7-byte header and a payload:
//
//	offset  size  field
//	0       2     magic: 0x4c 0x4d ("LM")
//	2       1     type: 0x01 MSG, 0x02 ACK, 0x03 CLOSE
//	3       4     payload length n
//	7       n     payload
//
// The length is checked against the type's limit before the payload is
// read: MSG at most MaxEnvelope (66205) bytes, ACK at most 273, CLOSE at
// most 255; no payload ever exceeds MaxFrame (131072). A wrong magic, an
// unknown type or a length over the limit ends the stream.
//
// MSG (client to server): the payload is one sealed envelope, below.
//
// ACK (server to client) answers one MSG:
//
//	offset  size  field
//	0       16    message id (the raw bytes of the envelope's id)
//	16      1     status: 0 ok, 1 duplicate, 2 rejected
//	17      1     reason length r (0 unless rejected; at most 255)
//	18      r     reason, UTF-8, for people and logs
//
// Status 0 (ok): the message was new and the receiver has it. Status 1
// (duplicate): the receiver had it already and did not take it again;
// for the sender this is success too. Status 2 (rejected): the receiver
// refused it; resending the same envelope may succeed if the reason was
// temporary (a full disk), and will not if it was the envelope (a bad
// signature, a wrong recipient). ACKs may come in any order; the sender
// matches them to messages by id.
//
// CLOSE (either way): the payload is the reason, UTF-8, at most 255
// bytes ("idle", "shutting down", a protocol error). The sender closes the
// stream after it; the receiver closes too and does not answer.
//
// # Envelopes
//
// A sealed envelope is the encoded message followed by its author's
// Ed25519 signature over exactly the encoded bytes (not over the frame).
// The bytes travel and are stored unchanged, so a peer that passes a
// message on cannot alter it, and anyone can check it with the envelope
// alone. There are two versions: version 1 carries a direct message,
// version 2 a room event; they differ only in version 2's seq field.
// Layout:
//
//	offset  size  field
//	0       2     magic: 0x4c 0x45 ("LE")
//	2       1     version: 0x01 direct message, 0x02 room event
//	3       16    message id: 16 bytes, unique; shown as 32 lowercase hex digits (see below)
//	19      32    author's Ed25519 public key
//	51      8     time, wall: unix nanoseconds, signed, must be >= 0
//	59      4     time, logical counter
//	63      8     seq (version 2 only): the author's sequence number in the room, >= 1
//	63/71   2+a   author: a = 52, the author's peer id (ASCII base32, no padding)
//	        2+t   to: t = 0 or 52, the recipient's peer id
//	        2+c   conversation: c <= 128, UTF-8; the room name of a room event
//	        2+k   kind: 1 <= k <= 32, from [a-z0-9._-]; "text" for a chat message
//	        2+m   author name: m <= 256, UTF-8, the author's display name when writing
//	        4+b   body: b <= 65536 (MaxText), UTF-8
//	        64    Ed25519 signature over every byte before it
//
// Each variable field is its length (2 bytes, 4 for the body) followed by
// that many bytes; in version 1 the author starts at offset 63, in
// version 2 at 71. Nothing follows the signature and nothing is padded,
// so an envelope has exactly one encoding. A receiver refuses an envelope
// that is longer than 66205 bytes, has another magic or version, or whose
// fields are out of bounds, not valid UTF-8, or contain NUL bytes (other
// control characters pass: display code sanitises them); whose signature
// does not verify with the public key it carries; or whose author is not
// the peer id of that key. Besides, each version has its rules:
//
//   - Version 1, a direct message: to is set (52 bytes) and conversation
//     is empty.
//   - Version 2, a room event: conversation is a room name, '#' and 1 to
//     64 bytes of [a-z0-9._-] ("#general"); to is empty; seq is at least
//     1. An author numbers its events in each room 1, 2, 3, … without a
//     gap, so a holder of an author's events in a room holds 1..n of them
//     (or, in a room with a retention, the newest of the old ones to n).
//   - Kinds "room.join" and "room.leave" (the author joins or leaves the
//     room) exist only in version 2 and have an empty body.
//   - Kind "typing" (version 1 only) says the author is writing to the
//     recipient now (an empty body), or in the room its body names, one
//     both are in. It is ephemeral: never stored, never queued
//     (PROTOCOL.md section 7 has its rules).
//   - Kind "room.retention" (version 2 only) sets how long the room's
//     members keep its events: its body is the duration in decimal
//     seconds, no sign and no leading zero, "0" (kept for ever, the
//     default) or 3600 to 315360000 (an hour to ten years). A receiver
//     refuses one outside those bounds, or stamped more than
//     MaxClockAhead ahead of its clock. The latest in the room's order
//     is in force.
//   - An author's times grow with its sequence in a room: a receiver
//     holding event n of an author refuses an event n+1 whose time is
//     not after n's. That is what lets a member that pruned a room's old
//     events prove that what it no longer holds was old (section 6).
//
// A message id is opaque to its readers: any 16 bytes the author never
// used before. Ids made by this version (NewID) start with 6 bytes of the
// author's Unix time in milliseconds, big-endian, followed by 10 random
// bytes, so that a store's index of ids grows at one end; earlier ones
// are 16 random bytes.
//
// Time is a hybrid logical clock reading (Kulkarni et al.): wall time
// where clocks agree, a logical counter where they do not. Each peer's
// clock moves past every timestamp it receives, except one more than five
// minutes (MaxClockAhead) ahead of its own wall clock, which is logged and
// does not move it. Conversations are ordered by time, then author id, then message
// id (see Compare).
//
// # Sending and receiving
//
// The receiver checks each MSG in this order: the envelope opens (layout
// and signature, as above); its author is the stream's peer (a relayed
// message is refused, for now); a direct message (version 1) is addressed
// to the receiver. A room event (version 2) has no recipient: its author
// sends it to each member of the room, and the receiver's chat service
// decides, when storing it, whether it takes events of that room (events
// a member missed reach it later by catch-up, on "lanchat/sync/1"
// streams: package message/roomsync). A refusal is acknowledged with
// status 2 when the payload starts with the envelope magic and is long
// enough to carry an id, otherwise it ends the stream. Then
// de-duplication: the receiver
// remembers the ids (with the author's key) of the last 100000 messages it
// took, and answers a repeat with status 1 without taking it again. A new
// message advances the receiver's clock, is stored (Config.Deliver), and
// only then acknowledged with status 0, so an ok means the message is
// kept. A failed store is acknowledged with status 2 and forgotten, so a
// resend is tried again. A receiver may take the frames that arrived
// together (up to 256) as one batch and store them in one transaction;
// it still answers every MSG with its own ACK, in the order received.
//
// The sender writes MSG frames without waiting for earlier ones to be
// acknowledged, and writes frames queued together (a backlog) in one go,
// so that the receiver finds them together. If the stream ends before a message is acknowledged, the
// sender dials again once and resends the same envelope; the receiver's
// de-duplication makes that safe. If no acknowledgement comes within
// AckTimeout (5 s) the sender closes the stream, which it then presumes
// half-open, and reports the peer unreachable.
//
// Timeouts: once a frame's first byte has arrived the whole frame must
// arrive within 30 s (FrameTimeout), or the stream ends; a stream on
// which nothing has travelled for IdleTimeout (2 minutes) is closed, by
// the client only while no acknowledgement is outstanding.
//
// # Versions
//
// An incompatible change to frames gets a new ALPN name ("lanchat/msg/2"),
// negotiated by TLS; an incompatible change to envelopes gets a new
// envelope version byte, so stored and relayed envelopes stay readable.
//
// # Example exchange
//
// alice (whose key is the Ed25519 seed of 32 bytes 0x01) sends "hi" to bob
// (seed of 32 bytes 0x02); bob acknowledges; later alice joins room
// #general, of which bob is a member, and sends him her join event; later
// still one of them closes the idle stream. Every byte on the stream,
// after TLS:
//
//	# alice → bob: MSG frame
//	4c 4d                                            frame magic "LM"
//	01                                               frame type 0x01 MSG
//	00 00 01 00                                      payload length 256
//	4c 45                                            envelope magic "LE"
//	01                                               envelope version 1
//	00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff  message id 00112233445566778899aabbccddeeff
//	8a 88 e3 dd 74 09 f1 95 fd 52 db 2d 3c ba 5d 72  author public key (Ed25519)
//	ca 67 09 bf 1d 94 12 1b f3 74 88 01 b4 0f 6f 5c
//	17 97 9c fe 36 2a 00 00                          wall time 1700000000000000000 ns (2023-11-14T22:13:20Z)
//	00 00 00 00                                      logical 0
//	00 34                                            author length 52
//	47 52 32 51 37 47 46 35 4c 48 36 50 5a 46 44 4e  author "GR2Q7GF5LH6PZFDNURNKVPUTHPQVJJFVBFHBYSV7IKDGKBPTZF7A"
//	55 52 4e 4b 56 50 55 54 48 50 51 56 4a 4a 46 56
//	42 46 48 42 59 53 56 37 49 4b 44 47 4b 42 50 54
//	5a 46 37 41
//	00 34                                            to length 52
//	4e 49 34 41 48 56 50 51 4c 47 49 43 55 48 44 4e  to "NI4AHVPQLGICUHDNV66JXJDSSIJPPSVMBBRUZQ5OO2ZHKKPQHATQ"
//	56 36 36 4a 58 4a 44 53 53 49 4a 50 50 53 56 4d
//	42 42 52 55 5a 51 35 4f 4f 32 5a 48 4b 4b 50 51
//	48 41 54 51
//	00 00                                            conversation length 0
//	00 04                                            kind length 4
//	74 65 78 74                                      kind "text"
//	00 05                                            author name length 5
//	61 6c 69 63 65                                   author name "alice"
//	00 00 00 02                                      body length 2
//	68 69                                            body "hi"
//	f1 d7 6c e0 36 a0 b5 89 4f b5 96 de cd 8d c2 e7  Ed25519 signature over every envelope byte above
//	0a 2b 9d 97 ea f7 b2 f5 87 62 c2 dd 97 59 47 1d
//	8b 23 c0 24 6e f5 c4 63 a5 42 8f bf 47 d9 56 fa
//	8f cd 32 d4 23 22 78 b0 01 49 8d 8f c2 23 bd 01
//
//	# bob → alice: ACK frame
//	4c 4d                                            frame magic "LM"
//	02                                               frame type 0x02 ACK
//	00 00 00 12                                      payload length 18
//	00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff  message id
//	00                                               status 0 ok
//	00                                               reason length 0
//
//	# alice → bob, later: her first event in room #general, a join (version 2)
//	4c 4d                                            frame magic "LM"
//	01                                               frame type 0x01 MSG
//	00 00 00 df                                      payload length 223
//	4c 45                                            envelope magic "LE"
//	02                                               envelope version 2
//	01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef  message id 0123456789abcdef0123456789abcdef
//	8a 88 e3 dd 74 09 f1 95 fd 52 db 2d 3c ba 5d 72  author public key (Ed25519)
//	ca 67 09 bf 1d 94 12 1b f3 74 88 01 b4 0f 6f 5c
//	17 97 9d 0c 2e 71 58 00                          wall time 1700000060000000000 ns (2023-11-14T22:14:20Z)
//	00 00 00 00                                      logical 0
//	00 00 00 00 00 00 00 01                          seq 1
//	00 34                                            author length 52
//	47 52 32 51 37 47 46 35 4c 48 36 50 5a 46 44 4e  author "GR2Q7GF5LH6PZFDNURNKVPUTHPQVJJFVBFHBYSV7IKDGKBPTZF7A"
//	55 52 4e 4b 56 50 55 54 48 50 51 56 4a 4a 46 56
//	42 46 48 42 59 53 56 37 49 4b 44 47 4b 42 50 54
//	5a 46 37 41
//	00 00                                            to length 0
//	00 08                                            conversation length 8
//	23 67 65 6e 65 72 61 6c                          conversation "#general"
//	00 09                                            kind length 9
//	72 6f 6f 6d 2e 6a 6f 69 6e                       kind "room.join"
//	00 05                                            author name length 5
//	61 6c 69 63 65                                   author name "alice"
//	00 00 00 00                                      body length 0
//	e7 5c 18 4c 96 35 de b6 6c 5b a0 d6 4d c1 bc ea  Ed25519 signature over every envelope byte above
//	f0 c9 83 d5 69 25 2e 61 91 cf a9 a2 26 05 b1 27
//	58 54 41 ce 23 a6 4f 01 9b 2a 8f 93 8e 5f 1a 9f
//	ea cb ed 7e 3b 01 7b aa 8f fc cd 79 db f7 37 04
//
//	# bob → alice: ACK frame for it, as above, with message id 0123456789abcdef0123456789abcdef
//
//	# either side, before closing a stream: CLOSE frame
//	4c 4d                                            frame magic "LM"
//	03                                               frame type 0x03 CLOSE
//	00 00 00 04                                      payload length 4
//	69 64 6c 65                                      reason "idle"
package message
