// Package filexfer sends files and folders peer to peer on streams of
// their own: the manifest first, then the data at once, every chunk
// hashed while it is sent and verified on arrival, a journal of verified
// chunks so a cut transfer resumes without re-hashing, and files written
// only below the download directory (os.Root), under their final names
// only once whole. This comment is the wire specification.
//
// # Streams
//
// The sender dials the recipient for ALPN `lanchat/file/1` on the mesh's
// mutually authenticated TLS 1.3 streams (section 4): the peer ids of both
// ends are proven before the first byte. One stream carries one transfer
// attempt, and ends with it; a resume is a new stream with the same
// transfer id.
//
// A transfer uses one stream, however large its files. Several streams
// at once, each carrying its own range of a large file, were measured
// against one (a plain TLS 1.3 copy of 1 GiB over 1, 2 and 4
// connections, between two namespace hosts and on loopback; the
// benchmarks stay in the tree to be rerun on other machines) and gained
// no 15 % that held from run to run, which is what would pay for ranges
// per stream and one journal shared by several: on two cores one stream
// already keeps both busy (the sender's encryption and system calls on one, the recipient's
// decryption, hashing and writes on the other), and a gigabit link
// carries about a third of what one stream moves on them.
//
// # Frames
//
// Every frame is the header of section 5 with magic `LF`: magic (2
// bytes), type (1), payload length (4, big-endian), payload. Integers are
// big-endian. A frame of an unknown type, or longer than its type's
// limit, ends the stream before its payload is read.
//
//	type  name       dir  payload                                         limit
//	0x01  OFFER      S→R  version 1, transfer id 16, chunk shift 1,       30
//	                      count 4, total 8
//	0x02  ENTRIES    S→R  one or more entries (below)                     65536
//	0x10  DATA       S→R  file 4, chunk 4, bytes (1 to 262144)            262152
//	0x11  CHUNK      S→R  file 4, chunk 4, BLAKE3-256 of the chunk 32     40
//	0x12  FILE_END   S→R  file 4, chunk count 4, file hash 32             40
//	0x13  CHANGED    S→R  file 4, size 8, mtime 8, source id 8            28
//	0x20  REPLY      R→S  code 1, reason length 1, reason                 257
//	0x21  HAVE       R→S  one or more have-lines (below)                  65536
//	0x22  HAVE_END   R→S  empty                                           0
//	0x23  NACK       R→S  file 4, chunk 4                                 8
//	0x24  FILE_DONE  R→S  file 4, 0 4                                     8
//	0x25  REDO       R→S  file 4, 0 4                                     8
//	0x26  COMPLETE   R→S  empty                                           0
//	0x30  ERROR      both code 1, reason length 1, reason                 257
//
// An entry is: kind 1 (0 file, 1 folder), permission bits 4 (at most
// 0o777: no setuid, setgid or sticky bit can be expressed), size 8 (0 for
// a folder), mtime 8 (Unix nanoseconds), source id 8 (the sender's inode
// number), name length 2 (1 to 4096), name (UTF-8, a relative path with
// `/` between elements; its first element is the base name of what was
// sent). The file and chunk numbers of later frames index the entries in
// the order sent, from 0. All ENTRIES frames of an offer hold at most
// 16 MiB (a recipient refuses more, code 2). Chunk c of a file holds bytes [c<<shift,
// (c+1)<<shift); the chunk shift is 16 to 24 (64 KiB to 16 MiB; 20 by
// default). The total is at most 2^50 and equals the sum of the sizes.
//
// A have-line is: file 4, flags 1 (bit 0 complete, bit 1 changed), range
// count 2, then that many ranges of chunk numbers [start 4, end 4),
// ascending and disjoint.
//
// Codes of REPLY and ERROR: 0 accepted (REPLY only), 1 declined, 2
// refused (a limit or a rule), 3 no space, 4 cannot write, 5 did not
// verify, 6 source keeps changing, 7 protocol violation, 8 cancelled. The
// reason is UTF-8, at most 255 bytes, for people.
//
// # A transfer
//
//  1. The sender sends OFFER and the ENTRIES that hold count entries. It
//     has not read a byte of the files: the manifest is made from a
//     directory walk alone.
//  2. The recipient checks the manifest (below) and answers REPLY. A code
//     other than 0 ends the stream. It may take its time (a person
//     deciding); senders wait two minutes by default.
//  3. After REPLY 0 the recipient sends HAVE-lines for the files it
//     already holds from an earlier attempt of the same transfer id and
//     sender, then HAVE_END. A file not listed is held not at all. A
//     complete file is not sent again; a changed one (its size, mtime or
//     source id differ from the earlier attempt's) starts over, and the
//     flag tells the sender so.
//  4. The sender sends the files in entry order, each as its missing
//     chunks (a chunk: DATA frames of its bytes in order, then CHUNK with
//     their hash), then FILE_END with the chunk count and the file hash:
//     BLAKE3-256 over the concatenated chunk hashes of every chunk of the
//     file, the ones the recipient held too (a sender that did not send
//     those chunks in this process reads and hashes them now: the check
//     covers the whole file against the source as it is now). Nothing
//     waits on an answer: small files follow one another in the same
//     stream without a round trip.
//  5. The recipient verifies each chunk on arrival. A mismatch is answered
//     with NACK and the sender sends that chunk again (at most 3 times,
//     then ERROR 5). Once every chunk of a file verified and FILE_END
//     came, the file hash is compared; a mismatch is answered with REDO
//     and the sender sends the whole file again (at most twice).
//  6. A source that changed while it was read (its size or mtime moved,
//     or it ended early) is announced with CHANGED, carrying its new
//     size, mtime and source id, and sent again from chunk 0.
//  7. A verified file is synced and put in place, then FILE_DONE says so;
//     after the last, the recipient makes the folders (empty ones too),
//     sends COMPLETE, and the transfer is done. The sender reports success
//     only on COMPLETE.
//
// Either side may send ERROR at any point, and then closes; the other
// reports the code. A cut stream is just closed: the recipient keeps what
// verified and the sender tries again later with the same transfer id.
//
// # What the recipient checks and does
//
// Names are made safe before anything else: absolute paths, `.` and `..`
// elements, empty elements, NUL, invalid UTF-8, elements over 255 bytes,
// more than 64 elements and the staging folder's name are refused (code
// 7); control characters, `\` and `<>:"|?*`, trailing dots and spaces
// become `_`, and device names (CON, NUL, COM1…) get a `_` prefix. Two
// entries with the same safe name, or a file where another entry needs a
// folder, are refused. An offer of more entries or bytes than the
// recipient allows is refused (code 2), one larger than the free space
// (less what it already holds) too (code 3), both before any data moves.
//
// Data goes into `.lanchat-partial/<key>/<file>.part` inside the download
// directory, beside a journal of the chunks that verified; the key is
// the first 16 bytes of BLAKE3(sender id, 0, transfer id) in hex, so one
// sender cannot reach another's transfer. Verified chunks are recorded
// after the data is synced (every 64 MiB or second, and whenever the
// stream ends), so a resume trusts the journal without reading the data
// again. A file is linked to its final name only when whole; a taken name
// gets a number (`a (1).txt`), nothing is ever overwritten, and a folder
// at the top of the offer gets its (numbered) name when the offer is
// accepted. Permission bits lose world-write and keep owner read-write.
// Everything goes through an os.Root of the download directory, so no
// name or planted link leads out of it.
//
// The sender sends regular files and folders only. Symbolic links below
// a sent folder are not followed and not sent (the sender lists them as
// skipped); a path named by the user may itself be a link.
//
// # Example exchange
//
// A folder `a` with one file `a/x` of 5 bytes ("hello"), chunk shift 16:
//
//	S→R  4c46 01 0000001e  01 <16-byte id> 10 00000002 0000000000000005
//	S→R  4c46 02 00000042  01 000001ed 0000000000000000 <mtime> <ino> 0001 61
//	                       00 000001a4 0000000000000005 <mtime> <ino> 0003 612f78
//	R→S  4c46 20 00000002  00 00
//	R→S  4c46 22 00000000
//	S→R  4c46 10 0000000d  00000001 00000000 68656c6c6f
//	S→R  4c46 11 00000028  00000001 00000000 <BLAKE3("hello")>
//	S→R  4c46 12 00000028  00000001 00000001 <BLAKE3(BLAKE3("hello"))>
//	R→S  4c46 24 00000008  00000001 00000000
//	R→S  4c46 26 00000000
package filexfer
