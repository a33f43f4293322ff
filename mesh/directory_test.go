package mesh

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func FuzzDecodeDirectory(f *testing.F) {
	responder := strings.Repeat("R", IDLen)
	seen := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, list := range [][]Peer{
		{{ID: responder, Name: "alice", Addr: netip.MustParseAddr("192.0.2.1"), GossipPort: 7480, TLSPort: 7481, Verified: true, LastSeen: seen, Started: 1}},
		{
			{ID: responder, Name: "alice", State: Busy, Status: "on a call", Verified: true},
			{ID: bobID, Name: "bob", State: Left, Addr: netip.MustParseAddr("2001:db8::1"), LastSeen: seen.In(time.FixedZone("", 3600))},
			{ID: "short", Name: "mallory"},
		},
	} {
		b, err := json.Marshal(list)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"id":"` + responder + `","name":""}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := decodeDirectory(bytes.NewReader(b), responder)
		if err != nil {
			return
		}
		if len(list) == 0 || list[0].ID != responder {
			t.Fatalf("accepted a directory that does not start with the responder: %+v", list)
		}
		for i, p := range list {
			if !validListed(p) || p.Verified != (i == 0) {
				t.Fatalf("entry %d passed unchecked: %+v", i, p)
			}
		}
		again, err := json.Marshal(list)
		if err != nil {
			t.Fatalf("accepted directory does not encode: %v", err)
		}
		list2, err := decodeDirectory(bytes.NewReader(again), responder)
		if err != nil {
			t.Fatalf("re-encoded directory refused: %v\n%s", err, again)
		}
		if len(list2) != len(list) {
			t.Fatalf("round trip kept %d of %d entries", len(list2), len(list))
		}
		for i := range list {
			p, q := list[i], list2[i]
			if !p.LastSeen.Equal(q.LastSeen) {
				t.Fatalf("entry %d: last seen %v became %v", i, p.LastSeen, q.LastSeen)
			}
			p.LastSeen, q.LastSeen = time.Time{}, time.Time{}
			if p != q {
				t.Fatalf("entry %d: round trip changed %+v into %+v", i, p, q)
			}
		}
	})
}

func TestDecodeDirectoryRefusesOversizedReply(t *testing.T) {
	responder := strings.Repeat("R", IDLen)
	reply := func(n int) string {
		var b strings.Builder
		b.WriteString(`[{"id":"` + responder + `","name":"alice"}`)
		for range n {
			b.WriteString(`,{"id":"` + bobID + `","name":"bob"}`)
		}
		b.WriteString("]")
		return b.String()
	}
	// Every entry is valid: only the size is wrong.
	if list, err := decodeDirectory(strings.NewReader(reply(100)), responder); err != nil || len(list) != 101 {
		t.Fatalf("small reply: %d entries, %v", len(list), err)
	}
	big := reply(maxDirectory / 60)
	if len(big) <= maxDirectory {
		t.Fatalf("test reply is only %d bytes", len(big))
	}
	if _, err := decodeDirectory(strings.NewReader(big), responder); err == nil {
		t.Fatal("accepted a reply over maxDirectory")
	}
}

func TestDecodeDirectoryRefusesInvalidResponderEntry(t *testing.T) {
	responder := strings.Repeat("R", IDLen)
	reply := `[{"id":"` + responder + `","name":"\u202eecila"},{"id":"` + bobID + `","name":"bob"}]`
	if list, err := decodeDirectory(strings.NewReader(reply), responder); err == nil {
		t.Fatalf("accepted a responder with an invalid name: %+v", list)
	}
}
