package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleEvents is one event of every type.
func sampleEvents() []Event {
	return []Event{
		Snapshot{Self: Self{ID: "S", Name: "self", Running: true}, Peers: []Peer{alice, bob}},
		Ready{ID: "S", Name: "self", Addr: "10.0.0.9", GossipPort: 7946, Port: 7947, Control: "/c.sock", MDNS: true},
		Message{ID: "m1", From: bobRef, To: aliceRef, Text: "hi \u2028 <>&", Time: t0, Outgoing: true},
		Presence{Peer: bobRef, State: "away", StatusText: "lunch", Change: ChangeStatus, Addr: "10.0.0.2", Verified: true},
		Receipt{ID: "m1", State: "read", Peer: bobRef},
		Warning{Text: "careful"},
		Resync{Seq: 9, Dropped: 3, Reason: "too slow"},
		Snapshot{Self: Self{ID: "S"}, Peers: []Peer{}, Rooms: []Room{{Name: "#general", Joined: true, MembersOnline: 2, MembersTotal: 3, Unread: 1}}},
		Message{ID: "m2", From: bobRef, To: PeerRef{ID: "#general", Name: "#general"}, Text: "@alice hi", Time: t0,
			Room: "#general", Mentions: []string{alice.ID}},
		RoomChange{Room: Room{Name: "#general", Joined: true, MembersOnline: 2, MembersTotal: 3}, Peer: bobRef, Change: RoomJoined},
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for i, ev := range sampleEvents() {
		b, _ := json.Marshal(ev.WithSeq(uint64(i + 1)))
		f.Add(b)
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `{"type":"nope"}`, `{"type":1}`, `{"type":"message","seq":-1}`,
		`{"type":"message","time":"yesterday"}`, `{"TYPE":"warning","Text":"x"}`, `{"type":"snapshot","peers":{}}`,
		`{"type":"message","type":"ready"}`, `{"type":"presence","seq":18446744073709551615}`,
		`{"type":"room","room":"#general"}`, `{"type":"room","room":{"name":1}}`, `{"type":"message","mentions":"x"}`,
		`{"type":"snapshot","rooms":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := DecodeEvent(line)
		if err != nil {
			if ev != nil {
				t.Fatalf("an event (%#v) and an error (%v)", ev, err)
			}
			return
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", ev, err)
		}
		if !bytes.HasPrefix(b, []byte(`{"type":"`+ev.EventType()+`","seq":`)) {
			t.Fatalf("decoded %T encodes as %s", ev, b)
		}
		ev2, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		b2, _ := json.Marshal(ev2)
		if ev2.EventType() != ev.EventType() || ev2.EventSeq() != ev.EventSeq() || !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the event:\n%s\n%s", b, b2)
		}
	})
}

// FuzzRequests feeds arbitrary bodies to the routes that take one and
// arbitrary query strings to GET /v1/history and GET /v1/rooms/members:
// never a 5xx, never a panic,
// and the implementation is called exactly when the input decodes
// cleanly, with what it decodes to.
func FuzzRequests(f *testing.F) {
	for _, s := range []struct {
		route uint8
		input string
	}{
		{0, `{"to":"bob","text":"hi"}`},
		{0, `{"to":"bob","text":"hi","wait":true,"timeout_ms":5}`},
		{0, `{"To":"bob","ſext":"hi"}`},
		{0, `{"to":"bob","text":"hi"} {}`},
		{0, `{"to":"bob","text":"hi","x":1}`},
		{0, `{"timeout_ms":1e3}`},
		{1, `{"state":"away","text":"lunch"}`},
		{1, `{"state":"away","text":null}`},
		{2, `{"ids":["a","b"]}`},
		{2, `{"ids":[]}`},
		{2, `{"ids":[1]}`},
		{3, "peer=bob&limit=5&since=2024-05-01T12:00:00Z&search=x&mark_read=true"},
		{3, "since=2024-05-01T12:00:00+02:00&limit=100000"},
		{3, "limit=abc"},
		{3, "limit=-1&x=y"},
		{3, "peer=%zz"},
		{3, "peer=a;b"},
		{3, "peer=%23general"},
		{3, "peer=#general"},
		{4, `{"room":"#general"}`},
		{4, `{"room":""}`},
		{4, `{"Room":"#ops","room":"#dev"}`},
		{4, `{"room":"#a","x":1}`},
		{4, `{"room":7}`},
		{5, `{"room":"#general"}`},
		{5, `{}`},
		{5, `{"room":null}`},
		{5, `{"room":"#a"} x`},
		{6, "room=%23general"},
		{6, "room="},
		{6, "room=#general"},
		{6, "room=%23a&room=%23b"},
		{6, "room=%23a&limit=1"},
	} {
		f.Add(s.route, s.input)
	}
	ctx := withPeerUID(context.Background(), os.Getuid())
	f.Fuzz(func(t *testing.T, route uint8, input string) {
		fk := newFake()
		h := testConfig().NewHandler(fk, nil)
		var rec *httptest.ResponseRecorder
		var want any   // what the fake must have got, if called
		var clean bool // whether input decodes cleanly
		switch route % 7 {
		case 0:
			var v SendRequest
			clean = refDecode(input, maxSendBody, &v, "to", "text", "wait", "timeout_ms")
			want = v
			rec = recordRequest(h, ctx, "POST", "/v1/messages", input)
		case 1:
			var v StatusRequest
			clean = refDecode(input, maxStatusBody, &v, "state", "text")
			want = v
			rec = recordRequest(h, ctx, "PUT", "/v1/status", input)
		case 2:
			var v ReadRequest
			clean = refDecode(input, maxReadBody, &v, "ids")
			want = v
			rec = recordRequest(h, ctx, "POST", "/v1/read", input)
		case 3:
			var q HistoryQuery
			q, clean = refHistory(input)
			want = q
			req := httptest.NewRequestWithContext(ctx, "GET", "/v1/history", nil)
			req.URL.RawQuery = input
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		case 4, 5:
			var v RoomRequest
			clean = refDecode(input, maxRoomBody, &v, "room") && v.Room != ""
			want = v
			// The fake is in the room, so that leaving it succeeds.
			fk.rooms = append(fk.rooms, Room{Name: v.Room, Joined: true})
			path := "/v1/rooms/join"
			if route%7 == 5 {
				path = "/v1/rooms/leave"
			}
			rec = recordRequest(h, ctx, "POST", path, input)
		case 6:
			var room string
			room, clean = refMembers(input)
			want = room
			req := httptest.NewRequestWithContext(ctx, "GET", "/v1/rooms/members", nil)
			req.URL.RawQuery = input
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		}
		calls := fk.callLog()
		switch {
		case rec.Code >= 500:
			t.Fatalf("%d for %q: %s", rec.Code, input, rec.Body)
		case rec.Code == 400:
			var e Error
			if err := decodeJSON(rec.Body.Bytes(), &e); err != nil || e.Code != CodeInvalid || e.Message == "" {
				t.Fatalf("400 reply %q: %+v, %v", rec.Body, e, err)
			}
			if len(calls) > 0 {
				t.Fatalf("refused %q, yet called %v", input, calls)
			}
			if clean {
				t.Fatalf("refused %q (%s), which decodes cleanly to %+v", input, e.Message, want)
			}
		case rec.Code/100 == 2:
			if len(calls) != 1 {
				t.Fatalf("accepted %q with calls %v", input, calls)
			}
			if !clean {
				t.Fatalf("accepted %q, which does not decode cleanly", input)
			}
			var got any
			switch route % 7 {
			case 0:
				got = fk.sendReq
			case 1:
				got = fk.status
			case 2:
				got = fk.read
			case 3:
				h, w := fk.hist, want.(HistoryQuery)
				if h.Since.Equal(w.Since) {
					h.Since = w.Since
				}
				got = h
			case 4, 5:
				got = fk.roomReq
			case 6:
				got = fk.membersOf
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: the fake got %#v, want %#v", input, got, want)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, input, rec.Body)
		}
	})
}

// refDecode is the reference for a clean body: at most limit bytes, one
// JSON object whose every key names one of fields, that unmarshals into
// v.
func refDecode(body string, limit int, v any, fields ...string) bool {
	if len(body) > limit || !json.Valid([]byte(body)) {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &m) != nil || m == nil {
		return false
	}
	for k := range m {
		if !slices.ContainsFunc(fields, func(f string) bool { return strings.EqualFold(f, k) }) {
			return false
		}
	}
	return json.Unmarshal([]byte(body), v) == nil
}

// refHistory is the reference for a clean history query.
func refHistory(raw string) (HistoryQuery, bool) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return HistoryQuery{}, false
	}
	var q HistoryQuery
	for k, vs := range vals {
		if len(vs) != 1 {
			return HistoryQuery{}, false
		}
		v := vs[0]
		switch k {
		case "peer":
			q.Peer = v
		case "search":
			q.Search = v
		case "limit":
			if v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 1 || n > MaxHistoryLimit {
					return HistoryQuery{}, false
				}
				q.Limit = int(n)
			}
		case "since":
			if v != "" {
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
				}
				if err != nil {
					return HistoryQuery{}, false
				}
				q.Since = t
			}
		case "mark_read":
			if v != "" {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return HistoryQuery{}, false
				}
				q.MarkRead = b
			}
		default:
			return HistoryQuery{}, false
		}
	}
	return q, true
}

// refMembers is the reference for a clean members query: one room, given
// once and not empty, and nothing else.
func refMembers(raw string) (string, bool) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "", false
	}
	for k, vs := range vals {
		if k != "room" || len(vs) != 1 {
			return "", false
		}
	}
	room := vals.Get("room")
	return room, room != ""
}
