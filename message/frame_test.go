package message

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFrameRoundTrip(t *testing.T) {
	ack := AppendAck(nil, Ack{ID: [16]byte{1, 2, 3}, Status: AckRejected, Reason: "disk full"})
	tests := []struct {
		name string
		typ  FrameType
		p    []byte
	}{
		{"msg", FrameMsg, bytes.Repeat([]byte{7}, 1000)},
		{"msg at limit", FrameMsg, make([]byte, MaxEnvelope)},
		{"ack", FrameAck, ack},
		{"close", FrameClose, []byte("idle")},
		{"empty close", FrameClose, nil},
	}
	var stream []byte
	for _, tt := range tests {
		stream = AppendFrame(stream, tt.typ, tt.p)
	}
	r := bytes.NewReader(stream)
	for _, tt := range tests {
		f, err := ReadFrame(r)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if f.Type != tt.typ || !bytes.Equal(f.Payload, tt.p) {
			t.Fatalf("%s: got %v %d bytes", tt.name, f.Type, len(f.Payload))
		}
	}
	if _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

// header builds a frame header by hand.
func header(magic string, typ byte, n uint32) []byte {
	b := append([]byte(magic), typ)
	return binary.BigEndian.AppendUint32(b, n)
}

func TestReadFrameRefuses(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"truncated header", []byte("LM\x01\x00"), io.ErrUnexpectedEOF},
		{"truncated payload", append(header("LM", 1, 10), "abc"...), io.ErrUnexpectedEOF},
		{"header only", header("LM", 1, 10), io.ErrUnexpectedEOF},
		{"bad magic", append(header("XX", 1, 3), "abc"...), ErrMalformed},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), ErrMalformed},
		{"unknown type", append(header("LM", 0x7f, 3), "abc"...), ErrMalformed},
		{"type zero", header("LM", 0, 0), ErrMalformed},
		{"length 4 GiB", header("LM", 1, 0xffffffff), ErrTooLarge},
		{"msg over MaxEnvelope", header("LM", 1, MaxEnvelope+1), ErrTooLarge},
		{"ack over its limit", header("LM", 2, ackFixedLen+MaxReason+1), ErrTooLarge},
		{"close over its limit", header("LM", 3, MaxReason+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.b)
			if _, err := ReadFrame(r); !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame = %v, want %v", err, tt.want)
			}
		})
	}
}

// A header announcing a huge frame is refused after its 7 bytes, before a
// payload buffer exists.
func TestReadFrameOversizeAllocatesNothing(t *testing.T) {
	b := append(header("LM", 1, 0xffffffff), make([]byte, 100)...)
	r := bytes.NewReader(b)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(b)
		ReadFrame(r)
	})
	if consumed := len(b) - r.Len(); consumed != FrameHeaderLen {
		t.Errorf("consumed %d bytes, want only the %d-byte header", consumed, FrameHeaderLen)
	}
	// The header array and the error value, never a payload.
	if allocs > 8 {
		t.Errorf("%v allocations for a refused header", allocs)
	}
}

func TestAckParse(t *testing.T) {
	id := [16]byte{0xaa, 0xbb}
	ok := AppendAck(nil, Ack{ID: id, Status: AckOK})
	tests := []struct {
		name    string
		p       []byte
		want    Ack
		wantErr error
	}{
		{"ok", ok, Ack{ID: id, Status: AckOK}, nil},
		{"duplicate", AppendAck(nil, Ack{ID: id, Status: AckDuplicate}), Ack{ID: id, Status: AckDuplicate}, nil},
		{"rejected", AppendAck(nil, Ack{ID: id, Status: AckRejected, Reason: "no"}), Ack{ID: id, Status: AckRejected, Reason: "no"}, nil},
		{"short", ok[:17], Ack{}, ErrMalformed},
		{"unknown status", append(append(bytes.Clone(ok[:16]), 9), 0), Ack{}, ErrMalformed},
		{"reason with ok", append(append(bytes.Clone(ok[:16]), 0, 1), 'x'), Ack{}, ErrMalformed},
		{"reason length wrong", append(append(bytes.Clone(ok[:16]), 2, 5), 'x'), Ack{}, ErrMalformed},
		{"reason not utf-8", append(append(bytes.Clone(ok[:16]), 2, 1), 0xff), Ack{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAck(tt.p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseAck = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("ParseAck = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClipReason(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"short", "disk full", "disk full"},
		{"invalid utf-8", "a\xffb", "a\uFFFDb"},
		{"cut at a rune boundary", strings.Repeat("x", MaxReason-1) + "é", strings.Repeat("x", MaxReason-1)},
		{"long", strings.Repeat("y", 1000), strings.Repeat("y", MaxReason)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clipReason(tt.in); got != tt.want {
				t.Fatalf("clipReason = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, FrameMsg, []byte("LE\x01hello")))
	f.Add(AppendFrame(nil, FrameAck, AppendAck(nil, Ack{Status: AckRejected, Reason: "no"})))
	f.Add(AppendFrame(nil, FrameClose, []byte("idle")))
	f.Add(header("LM", 1, 0xffffffff))
	f.Add([]byte("LM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			start := len(b) - r.Len()
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxFrame || len(fr.Payload) > fr.Type.maxPayload() {
				t.Fatalf("payload of %d bytes passed", len(fr.Payload))
			}
			end := len(b) - r.Len()
			if re := AppendFrame(nil, fr.Type, fr.Payload); !bytes.Equal(re, b[start:end]) {
				t.Fatal("frame does not re-encode identically")
			}
			if fr.Type == FrameAck {
				if a, err := ParseAck(fr.Payload); err == nil {
					if re := AppendAck(nil, a); !bytes.Equal(re, fr.Payload) {
						t.Fatal("ack does not re-encode identically")
					}
				}
			}
		}
	})
}

func TestAppendAckFrame(t *testing.T) {
	long := strings.Repeat("é", MaxReason)
	for _, a := range []Ack{
		{Status: AckOK},
		{ID: [idLen]byte{1, 2, 3}, Status: AckDuplicate},
		{ID: [idLen]byte{0xff}, Status: AckRejected, Reason: "full disk"},
		{Status: AckRejected, Reason: long},
	} {
		want := AppendFrame([]byte("x"), FrameAck, AppendAck(nil, a))
		if got := appendAckFrame([]byte("x"), a); !bytes.Equal(got, want) {
			t.Errorf("appendAckFrame(%+v) = %x, want %x", a, got, want)
		}
	}
}

// FuzzParseAck: any ACK payload either parses, and then re-encodes to the
// same bytes, or is refused with ErrMalformed; the same bytes as a CLOSE
// frame's reason are taken only when they are a valid reason.
func FuzzParseAck(f *testing.F) {
	f.Add(AppendAck(nil, Ack{ID: [idLen]byte{1}, Status: AckOK}))
	f.Add(AppendAck(nil, Ack{Status: AckRejected, Reason: "disk full"}))
	f.Add(AppendAck(nil, Ack{Status: AckDuplicate})[:ackFixedLen-1])
	f.Add([]byte("idle"))
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := ParseAck(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseAck: error outside ErrMalformed: %v", err)
			}
		} else if re := AppendAck(nil, a); !bytes.Equal(re, p) {
			t.Fatalf("ack %+v re-encodes as %x, not %x", a, re, p)
		}
		r, err := parseReason(p)
		switch {
		case err != nil && !errors.Is(err, ErrMalformed):
			t.Fatalf("parseReason: error outside ErrMalformed: %v", err)
		case err == nil && (r != string(p) || len(r) > MaxReason || !utf8.ValidString(r)):
			t.Fatalf("parseReason(%q) = %q", p, r)
		}
	})
}
