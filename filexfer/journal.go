package filexfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The journal is an append-only file beside a transfer's partial files.
// Each record is: type (1 byte), length (2 bytes, big-endian), payload,
// CRC-32 (IEEE) of the three before. Records are appended only after the
// data they describe was synced, and the journal is synced after them, so
// after a crash every record read back is true; a torn last record fails
// its CRC and everything from it on is dropped.
const (
	recChunk   = 'C' // file index, chunk index, chunk hash: verified and synced
	recReset   = 'R' // file index, size, mtime, source id: the source changed; forget its chunks
	recDone    = 'D' // file index, final name: verified, synced and in place
	recTop     = 'T' // top name, NUL, the name it was given in the download directory
	maxJournal = 256 << 20
)

type record struct {
	typ     byte
	payload []byte
}

func appendRecord(dst []byte, typ byte, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

// readJournal reads the records of f, stopping at the first that is torn
// or fails its CRC, and returns the length of the good prefix.
func readJournal(f *os.File) ([]record, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if fi.Size() > maxJournal {
		return nil, 0, fmt.Errorf("journal of %d bytes", fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, 0, err
	}
	recs, good := parseJournal(b)
	return recs, good, nil
}

func parseJournal(b []byte) ([]record, int64) {
	var recs []record
	off := 0
	for len(b)-off >= 7 {
		n := int(binary.BigEndian.Uint16(b[off+1:]))
		end := off + 3 + n + 4
		if end > len(b) {
			break
		}
		if crc32.ChecksumIEEE(b[off:off+3+n]) != binary.BigEndian.Uint32(b[off+3+n:]) {
			break
		}
		recs = append(recs, record{typ: b[off], payload: b[off+3 : off+3+n]})
		off = end
	}
	return recs, int64(off)
}

var errBadRecord = errors.New("bad journal record")
