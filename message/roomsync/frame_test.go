package roomsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"runtime"
	"strings"
	"testing"

	"lanchat/mesh"
	"lanchat/message"
)

func TestPullRoundTrip(t *testing.T) {
	a, b, c := seededIdentity(t, 1).id, seededIdentity(t, 2).id, seededIdentity(t, 3).id
	for _, tt := range []struct {
		name string
		room string
		have Vector
	}{
		{"empty", "#general", nil},
		{"some", "#dev", Vector{a: 1, b: 1 << 40, c: 7}},
		{"zero counts left out", "#x", Vector{a: 0, b: 3}},
		{"longest room", "#" + strings.Repeat("r", message.MaxRoomName), Vector{c: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := appendPull(nil, tt.room, tt.have)
			got, err := parsePull(p, MaxVectorLen)
			if err != nil {
				t.Fatal(err)
			}
			want := Vector{}
			for k, v := range tt.have {
				if v > 0 {
					want[k] = v
				}
			}
			if got.room != tt.room || !maps.Equal(got.have, want) {
				t.Fatalf("got %q %v, want %q %v", got.room, got.have, tt.room, want)
			}
			if !bytes.Equal(appendPull(nil, got.room, got.have), p) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestPageRoundTrip(t *testing.T) {
	evs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{7}, 1000)}
	got, err := parsePage(appendPage(nil, evs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(evs) {
		t.Fatalf("%d envelopes, want %d", len(got), len(evs))
	}
	for i := range evs {
		if !bytes.Equal(got[i], evs[i]) {
			t.Fatalf("envelope %d differs", i)
		}
	}
	// An envelope length over MaxEnvelope is refused as too large.
	p := binary.BigEndian.AppendUint16(nil, 1)
	p = binary.BigEndian.AppendUint32(p, message.MaxEnvelope+1)
	if _, err := parsePage(append(p, make([]byte, message.MaxEnvelope+1)...)); !errors.Is(err, message.ErrTooLarge) {
		t.Fatalf("oversize envelope: %v", err)
	}
}

func TestHeadAndRefuseRoundTrip(t *testing.T) {
	h := head{author: seededIdentity(t, 1).id, after: 3, until: 1 << 50}
	got, err := parseHead(appendHead(nil, h))
	if err != nil || got != h {
		t.Fatalf("head %+v, %v", got, err)
	}
	long := strings.Repeat("é", 200) // 400 bytes, cut at a rune boundary
	code, reason, err := parseRefuse(appendRefuse(nil, refuseDenied, long))
	if err != nil || code != refuseDenied || len(reason) > MaxReason || !strings.HasPrefix(long, reason) {
		t.Fatalf("refuse %d %q, %v", code, reason, err)
	}
}

// A header announcing more than the type allows is refused before any
// payload is allocated or read.
func TestReadFrameOversizeAllocatesNothing(t *testing.T) {
	for _, typ := range []FrameType{FramePull, FramePage, FrameHead, FrameDone, FrameIndex, FrameClose, FrameRefuse} {
		h := binary.BigEndian.AppendUint32([]byte{'L', 'S', byte(typ)}, uint32(typ.maxPayload()+1))
		r := bytes.NewReader(h)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			r.Reset(h)
			if _, err := ReadFrame(r); !errors.Is(err, message.ErrTooLarge) {
				t.Fatalf("%v: %v", typ, err)
			}
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 10<<10 { // the errors only
			t.Fatalf("%v: %d bytes allocated refusing 10 headers", typ, got)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, FramePull, appendPull(nil, "#general", Vector{seededIdentity(f, 1).id: 3})))
	f.Add(appendFrame(nil, FramePage, appendPage(nil, [][]byte{[]byte("x")})))
	f.Add(appendFrame(nil, FrameDone, nil))
	f.Add([]byte("LS\x05\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, message.ErrMalformed) && !errors.Is(err, message.ErrTooLarge) &&
				!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error outside the sentinels: %v", err)
			}
			return
		}
		if len(fr.Payload) > fr.Type.maxPayload() {
			t.Fatalf("%v payload of %d bytes", fr.Type, len(fr.Payload))
		}
		if re := appendFrame(nil, fr.Type, fr.Payload); !bytes.Equal(re, b[:len(re)]) {
			t.Fatal("frame does not re-encode identically")
		}
	})
}

func FuzzParsePull(f *testing.F) {
	a, b := seededIdentity(f, 1).id, seededIdentity(f, 2).id
	f.Add(appendPull(nil, "#general", Vector{a: 1, b: 2}))
	f.Add(appendPull(nil, "#x", nil))
	f.Add([]byte{8, '#', 'g', 'e', 'n', 'e', 'r', 'a', 'l', 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := parsePull(p, 8)
		if err != nil {
			if !errors.Is(err, message.ErrMalformed) && !errors.Is(err, message.ErrTooLarge) {
				t.Fatalf("error outside the sentinels: %v", err)
			}
			return
		}
		if !message.ValidRoom(got.room) || len(got.have) > 8 {
			t.Fatalf("accepted room %q with %d authors", got.room, len(got.have))
		}
		for id, n := range got.have {
			if !mesh.ValidID(id) || n == 0 {
				t.Fatalf("accepted entry %q %d", id, n)
			}
		}
		if !bytes.Equal(appendPull(nil, got.room, got.have), p) {
			t.Fatal("accepted a pull that does not re-encode identically")
		}
	})
}

func FuzzParsePage(f *testing.F) {
	f.Add(appendPage(nil, [][]byte{[]byte("one"), []byte("two")}))
	f.Add([]byte{0, 1, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		evs, err := parsePage(p)
		if err != nil {
			if !errors.Is(err, message.ErrMalformed) && !errors.Is(err, message.ErrTooLarge) {
				t.Fatalf("error outside the sentinels: %v", err)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("accepted an empty page")
		}
		if !bytes.Equal(appendPage(nil, evs), p) {
			t.Fatal("accepted a page that does not re-encode identically")
		}
	})
}

func FuzzParseHeadAndRefuse(f *testing.F) {
	f.Add(appendHead(nil, head{author: seededIdentity(f, 1).id, after: 1, until: 2}))
	f.Add(appendRefuse(nil, refuseRateLimited, "slow down"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if h, err := parseHead(p); err == nil {
			if !mesh.ValidID(h.author) || h.until <= h.after || !bytes.Equal(appendHead(nil, h), p) {
				t.Fatalf("accepted head %+v", h)
			}
		} else if !errors.Is(err, message.ErrMalformed) {
			t.Fatalf("head: error outside the sentinels: %v", err)
		}
		if code, reason, err := parseRefuse(p); err == nil {
			if !bytes.Equal(appendRefuse(nil, code, reason), p) {
				t.Fatalf("accepted refusal %d %q", code, reason)
			}
		} else if !errors.Is(err, message.ErrMalformed) {
			t.Fatalf("refuse: error outside the sentinels: %v", err)
		}
	})
}
