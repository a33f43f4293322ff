package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEveryRouteRoundTrips(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	c := NewClient(sock)
	defer c.Close()
	ctx := ctxFor(t, 20*time.Second)

	t.Run("self", func(t *testing.T) {
		got, err := c.Self(ctx)
		if err != nil || !reflect.DeepEqual(got, f.self) {
			t.Fatalf("Self = %+v, %v; want %+v", got, err, f.self)
		}
	})
	t.Run("peers", func(t *testing.T) {
		got, err := c.Peers(ctx)
		if err != nil || !reflect.DeepEqual(got, f.peers) {
			t.Fatalf("Peers = %+v, %v; want %+v", got, err, f.peers)
		}
	})
	t.Run("status", func(t *testing.T) {
		req := StatusRequest{State: "away", Text: "lunch ☕"}
		got, err := c.SetStatus(ctx, req)
		if err != nil || got != f.statusReply {
			t.Fatalf("SetStatus = %+v, %v; want %+v", got, err, f.statusReply)
		}
		if f.status != req {
			t.Errorf("the fake got %+v, want %+v", f.status, req)
		}
	})
	t.Run("send", func(t *testing.T) {
		req := SendRequest{To: "bob", Text: "hello <b>&</b> \"bob\"\n\x00 ✓", Wait: true, TimeoutMS: 1500}
		got, err := c.Send(ctx, req)
		if err != nil || got != f.sendReply {
			t.Fatalf("Send = %+v, %v; want %+v", got, err, f.sendReply)
		}
		if f.sendReq != req {
			t.Errorf("the fake got %+v, want %+v", f.sendReq, req)
		}
	})
	t.Run("history", func(t *testing.T) {
		since := time.Date(2024, 4, 30, 9, 30, 0, 5, time.FixedZone("", 2*3600))
		q := HistoryQuery{Peer: "bob & co", Limit: 7, Since: since, Search: "lunch +today", MarkRead: true}
		got, err := c.History(ctx, q)
		if err != nil || !reflect.DeepEqual(got, f.history) {
			t.Fatalf("History = %+v, %v; want %+v", got, err, f.history)
		}
		h := f.hist
		if h.Peer != q.Peer || h.Limit != q.Limit || !h.Since.Equal(q.Since) || h.Search != q.Search || h.MarkRead != q.MarkRead {
			t.Errorf("the fake got %+v, want %+v", h, q)
		}
	})
	t.Run("history defaults", func(t *testing.T) {
		if _, err := c.History(ctx, HistoryQuery{}); err != nil {
			t.Fatal(err)
		}
		if h := f.hist; !reflect.DeepEqual(h, HistoryQuery{}) {
			t.Errorf("the fake got %+v, want the zero query", h)
		}
	})
	t.Run("outbox", func(t *testing.T) {
		got, err := c.Outbox(ctx)
		if err != nil || !reflect.DeepEqual(got, f.outbox) {
			t.Fatalf("Outbox = %+v, %v; want %+v", got, err, f.outbox)
		}
	})
	t.Run("read", func(t *testing.T) {
		req := ReadRequest{IDs: []string{"m0", "m2"}}
		if err := c.MarkRead(ctx, req); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.read, req) {
			t.Errorf("the fake got %+v, want %+v", f.read, req)
		}
	})
	t.Run("room send", func(t *testing.T) {
		f.sendReply = SendReply{ID: "m3", To: PeerRef{ID: "#general", Name: "#general"}, State: "sent", Room: "#general", Online: 4, Reached: 3}
		req := SendRequest{To: "#general", Text: "@bob lunch?", Wait: true, TimeoutMS: 2000}
		got, err := c.Send(ctx, req)
		if err != nil || got != f.sendReply {
			t.Fatalf("Send = %+v, %v; want %+v", got, err, f.sendReply)
		}
		if f.sendReq != req {
			t.Errorf("the fake got %+v, want %+v", f.sendReq, req)
		}
	})
	t.Run("room history", func(t *testing.T) {
		f.history = []HistoryEntry{
			{ID: "j1", From: bobRef, To: PeerRef{ID: "#general", Name: "#general"}, Time: t0, State: "delivered", Room: "#general", Kind: "join"},
			{ID: "m4", From: bobRef, To: PeerRef{ID: "#general", Name: "#general"}, Text: "@alice hi", Time: t0, State: "delivered",
				Room: "#general", Kind: "text", Mentions: []string{alice.ID}},
		}
		got, err := c.History(ctx, HistoryQuery{Peer: "#general"})
		if err != nil || !reflect.DeepEqual(got, f.history) {
			t.Fatalf("History = %+v, %v; want %+v", got, err, f.history)
		}
		if f.hist.Peer != "#general" {
			t.Errorf("the fake got peer %q, want #general", f.hist.Peer)
		}
	})
	t.Run("rooms", func(t *testing.T) {
		got, err := c.Rooms(ctx)
		if err != nil || !reflect.DeepEqual(got, f.rooms) {
			t.Fatalf("Rooms = %+v, %v; want %+v", got, err, f.rooms)
		}
	})
	t.Run("join", func(t *testing.T) {
		got, err := c.JoinRoom(ctx, RoomRequest{Room: "#ops"})
		want := Room{Name: "#ops", Joined: true, MembersOnline: 2, MembersTotal: 2}
		if err != nil || got != want {
			t.Fatalf("JoinRoom = %+v, %v; want %+v", got, err, want)
		}
		if f.roomReq.Room != "#ops" {
			t.Errorf("the fake got %+v", f.roomReq)
		}
	})
	t.Run("members", func(t *testing.T) {
		got, err := c.RoomMembers(ctx, "#general")
		if err != nil || !reflect.DeepEqual(got, f.members["#general"]) {
			t.Fatalf("RoomMembers = %+v, %v; want %+v", got, err, f.members["#general"])
		}
		if f.membersOf != "#general" {
			t.Errorf("the fake was asked of %q, want #general", f.membersOf)
		}
	})
	t.Run("leave", func(t *testing.T) {
		got, err := c.LeaveRoom(ctx, RoomRequest{Room: "#ops"})
		want := Room{Name: "#ops", MembersOnline: 1, MembersTotal: 1}
		if err != nil || got != want {
			t.Fatalf("LeaveRoom = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("leave a room not joined", func(t *testing.T) {
		_, err := c.LeaveRoom(ctx, RoomRequest{Room: "#ops"})
		if !errors.Is(err, ErrNotMember) {
			t.Fatalf("LeaveRoom: %v, want not_member", err)
		}
	})
	want := []string{"Self", "Peers", "SetStatus", "Send", "History", "History", "Outbox", "MarkRead",
		"Send", "History", "Rooms", "JoinRoom", "RoomMembers", "LeaveRoom", "LeaveRoom"}
	if got := f.callLog(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

// TestRawReplies pins the wire form scripts see: statuses, content type,
// and empty lists as [] rather than null.
func TestRawReplies(t *testing.T) {
	f := newFake()
	f.peers, f.history, f.outbox, f.rooms = nil, nil, nil, nil
	f.rooms = []Room{{Name: "#general", Joined: true}}
	f.members = nil
	sock, _ := serve(t, f, testConfig())
	hc := rawClient(sock)
	for _, tc := range []struct {
		method, target, body string
		status               int
		reply                string // "" for any
	}{
		{"GET", "/v1/peers", "", 200, "[]\n"},
		{"GET", "/v1/history", "", 200, "[]\n"},
		{"GET", "/v1/history?peer=&limit=&since=&search=&mark_read=", "", 200, "[]\n"},
		{"GET", "/v1/history?since=2024-05-01T12:00:00+02:00", "", 200, "[]\n"}, // '+' unescaped
		{"GET", "/v1/history?limit=100000&mark_read=1", "", 200, "[]\n"},
		{"GET", "/v1/outbox", "", 200, "[]\n"},
		{"POST", "/v1/messages", `{"to":"bob","text":"hi"}`, 201, ""},
		{"PUT", "/v1/status", ` {"state":"away"} ` + "\n", 200, ""},
		{"POST", "/v1/read", `{"ids":[]}`, 204, ""},
		{"POST", "/v1/read", `{"ids":null}`, 204, ""},
		{"HEAD", "/v1/self", "", 200, ""},
		{"HEAD", "/v1/events", "", 200, ""},
		{"GET", "/v1/history?peer=%23general", "", 200, "[]\n"},
		{"GET", "/v1/rooms/members?room=%23general", "", 200, "[]\n"},
		{"HEAD", "/v1/rooms/members?room=%23general", "", 200, ""},
		{"POST", "/v1/rooms/join", `{"room":"#ops"}`, 200, `{"name":"#ops","joined":true,"members_online":1,"members_total":1,"unread":0,"retention":0}` + "\n"},
		{"POST", "/v1/rooms/retention", `{"room":"#ops","retention":2592000}`, 200, `{"name":"#ops","joined":true,"members_online":1,"members_total":1,"unread":0,"retention":2592000}` + "\n"},
		{"POST", "/v1/rooms/retention", `{"retention":2592000}`, 400, ""},
		{"POST", "/v1/rooms/leave", `{"room":"#ops"}`, 200, `{"name":"#ops","joined":false,"members_online":0,"members_total":0,"unread":0,"retention":2592000}` + "\n"},
		{"POST", "/v1/rooms/retention", `{"room":"#ops","retention":0}`, 409, ""},
		{"POST", "/v1/messages", `{"to":"#general","text":"hi all"}`, 201, ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			status, _, resp, reply := rawDo(t, hc, tc.method, tc.target, tc.body)
			if status != tc.status || (tc.reply != "" && reply != tc.reply) {
				t.Fatalf("%d %q, want %d %q", status, reply, tc.status, tc.reply)
			}
			want := "application/json"
			if strings.HasSuffix(tc.target, "/events") {
				want = "application/x-ndjson"
			}
			if ct := resp.Header.Get("Content-Type"); status != 204 && ct != want {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	if h := f.hist; h.Peer != "#general" {
		t.Errorf("history query %+v, want peer #general", h)
	}
	if f.sendReq.To != "#general" || f.membersOf != "#general" {
		t.Errorf("send to %q, members of %q; want #general for both", f.sendReq.To, f.membersOf)
	}
	f.rooms = nil
	status, _, _, reply := rawDo(t, hc, "GET", "/v1/rooms", "")
	if status != 200 || reply != "[]\n" {
		t.Errorf("GET /v1/rooms with none: %d %q, want 200 []", status, reply)
	}
}

func TestParseSince(t *testing.T) {
	want := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{"2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00 02:00", "2024-05-01T10:00:00.000Z"} {
		got, err := parseSince(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

func TestErrorsKeepTheirCode(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	c := NewClient(sock)
	hc := rawClient(sock)
	ctx := ctxFor(t, 20*time.Second)
	for _, tc := range []struct {
		name     string
		err      error
		code     string
		status   int
		sentinel error
		message  string
	}{
		{"unknown recipient", &Error{Code: CodeUnknownRecipient, Message: `nobody called "zed"`, Online: []Peer{alice, bob}},
			CodeUnknownRecipient, 404, ErrUnknownRecipient, `nobody called "zed"`},
		{"ambiguous recipient", &Error{Code: CodeAmbiguousRecipient, Message: `2 peers are called "bob"`, Matches: []Peer{bob, bob}},
			CodeAmbiguousRecipient, 409, ErrAmbiguousRecipient, `2 peers are called "bob"`},
		{"offline", &Error{Code: CodeOffline, Message: "bob is offline", To: &bobRef}, CodeOffline, 503, ErrOffline, "bob is offline"},
		{"invalid", Errorf(CodeInvalid, "status text longer than 160 bytes"), CodeInvalid, 400, ErrInvalid, "status text longer than 160 bytes"},
		{"not found", Errorf(CodeNotFound, "no message m9"), CodeNotFound, 404, ErrNotFound, "no message m9"},
		{"forbidden", Errorf(CodeForbidden, "no"), CodeForbidden, 403, ErrForbidden, "no"},
		{"failed", Errorf(CodeFailed, "disk full"), CodeFailed, 500, ErrFailed, "disk full"},
		{"not member", Errorf(CodeNotMember, "not a member of #ops"), CodeNotMember, 409, ErrNotMember, "not a member of #ops"},
		{"plain error", errors.New("database is locked"), CodeFailed, 500, ErrFailed, "database is locked"},
		{"wrapped", fmt.Errorf("send to bob: %w", Errorf(CodeOffline, "bob is offline")), CodeOffline, 503, ErrOffline, "send to bob: bob is offline"},
		{"bare sentinel", ErrUnknownRecipient, CodeUnknownRecipient, 404, ErrUnknownRecipient, "unknown recipient"},
		{"node closed", fmt.Errorf("send: %w", ErrClosed), CodeOffline, 503, ErrClosed, "node closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.setErr(tc.err)
			status, e, _, _ := rawDo(t, hc, "GET", "/v1/peers", "")
			if status != tc.status || e.Code != tc.code || e.Message != tc.message {
				t.Errorf("reply %d %+v, want %d code %s error %q", status, e, tc.status, tc.code, tc.message)
			}
			if HTTPStatus(e.Code) != status {
				t.Errorf("status %d, HTTPStatus(%s) = %d", status, e.Code, HTTPStatus(e.Code))
			}

			_, err := c.Peers(ctx)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("Client.Peers: %v, want errors.Is %v", err, tc.sentinel)
			}
			got, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Client.Peers: %T is not an *Error", err)
			}
			if got.Code != tc.code || got.Message != tc.message || err.Error() != tc.message {
				t.Errorf("Client.Peers: %+v (%q), want code %s error %q", got, err, tc.code, tc.message)
			}
			if want, ok := errors.AsType[*Error](tc.err); ok {
				if !reflect.DeepEqual(got.Matches, want.Matches) || !reflect.DeepEqual(got.Online, want.Online) || !reflect.DeepEqual(got.To, want.To) {
					t.Errorf("Client.Peers: %+v, want matches, online and to of %+v", got, want)
				}
			}
			for _, other := range []error{ErrUnknownRecipient, ErrAmbiguousRecipient, ErrInvalid, ErrForbidden, ErrNotMember} {
				if other != tc.sentinel && errors.Is(err, other) && other.(*Error).Code != tc.code {
					t.Errorf("Client.Peers: %v also matches %v", err, other)
				}
			}
		})
	}
}

// TestBadRequestsNeverReachTheNode: whatever does not decode cleanly is
// refused with 400 invalid before the implementation is called.
func TestBadRequestsNeverReachTheNode(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	hc := rawClient(sock)
	huge := strings.Repeat("a", maxSendBody)
	for _, tc := range []struct {
		name, method, target, body string
		want                       string // in the error message
	}{
		{"malformed JSON", "POST", "/v1/messages", `{"to":"bob","text":`, "ends too soon"},
		{"not JSON", "POST", "/v1/messages", `to=bob&text=hi`, "want a JSON object"},
		{"bad syntax", "POST", "/v1/messages", `{"to":"bob" "text":"hi"}`, "malformed JSON"},
		{"unknown field", "POST", "/v1/messages", `{"to":"bob","text":"hi","urgent":true}`, `unknown field "urgent"`},
		{"trailing object", "POST", "/v1/messages", `{"to":"bob","text":"hi"}{"to":"eve","text":"hi"}`, "data after the JSON object"},
		{"trailing garbage", "POST", "/v1/messages", `{"to":"bob","text":"hi"} x`, "data after the JSON object"},
		{"wrong type", "POST", "/v1/messages", `{"to":42,"text":"hi"}`, `field "to": want a string, got a JSON number`},
		{"timeout as string", "POST", "/v1/messages", `{"to":"bob","text":"hi","timeout_ms":"5"}`, `"timeout_ms"`},
		{"fractional timeout", "POST", "/v1/messages", `{"to":"bob","text":"hi","timeout_ms":1.5}`, `"timeout_ms"`},
		{"wait as string", "POST", "/v1/messages", `{"to":"bob","text":"hi","wait":"yes"}`, `"wait"`},
		{"empty body", "POST", "/v1/messages", ``, "empty request body"},
		{"null", "POST", "/v1/messages", `null`, "want a JSON object"},
		{"array", "POST", "/v1/messages", `[{"to":"bob","text":"hi"}]`, "want a JSON object"},
		{"oversized message", "POST", "/v1/messages", `{"to":"bob","text":"` + huge + `"}`, "larger than 1048576 bytes"},
		{"status text as number", "PUT", "/v1/status", `{"state":"away","text":5}`, `field "text"`},
		{"oversized status", "PUT", "/v1/status", `{"state":"away","text":"` + strings.Repeat("z", maxStatusBody) + `"}`, "larger than 16384 bytes"},
		{"ids as string", "POST", "/v1/read", `{"ids":"m1"}`, `field "ids": want a list of strings, got a JSON string`},
		{"ids of numbers", "POST", "/v1/read", `{"ids":[1,2]}`, `field "ids`},
		{"read with unknown field", "POST", "/v1/read", `{"id":"m1"}`, `unknown field "id"`},
		{"limit -1", "GET", "/v1/history?limit=-1", "", "limit"},
		{"limit abc", "GET", "/v1/history?limit=abc", "", "limit"},
		{"limit 0", "GET", "/v1/history?limit=0", "", "limit"},
		{"limit too big", "GET", "/v1/history?limit=100001", "", "from 1 to 100000"},
		{"since yesterday", "GET", "/v1/history?since=yesterday", "", "RFC 3339"},
		{"since a date", "GET", "/v1/history?since=2024-05-01", "", "RFC 3339"},
		{"mark_read maybe", "GET", "/v1/history?mark_read=maybe", "", "mark_read"},
		{"unknown parameter", "GET", "/v1/history?colour=red", "", `unknown query parameter "colour"`},
		{"repeated parameter", "GET", "/v1/history?peer=a&peer=b", "", "given 2 times"},
		{"bad escape", "GET", "/v1/history?peer=%zz", "", "query string"},
		{"semicolon", "GET", "/v1/history?peer=a;limit=3", "", "query string"},
		{"parameter on self", "GET", "/v1/self?pretty=1", "", "takes none"},
		{"parameter on send", "POST", "/v1/messages?to=bob", `{"to":"bob","text":"hi"}`, "takes none"},
		{"join: empty body", "POST", "/v1/rooms/join", ``, "empty request body"},
		{"join: no room", "POST", "/v1/rooms/join", `{}`, `"room" is required`},
		{"join: empty room", "POST", "/v1/rooms/join", `{"room":""}`, `"room" is required`},
		{"join: room as number", "POST", "/v1/rooms/join", `{"room":7}`, `field "room": want a string, got a JSON number`},
		{"join: rooms as list", "POST", "/v1/rooms/join", `{"room":["#a","#b"]}`, `field "room"`},
		{"join: unknown field", "POST", "/v1/rooms/join", `{"room":"#a","name":"a"}`, `unknown field "name"`},
		{"join: trailing object", "POST", "/v1/rooms/join", `{"room":"#a"}{"room":"#b"}`, "data after the JSON object"},
		{"join: malformed", "POST", "/v1/rooms/join", `{"room":"#a"`, "ends too soon"},
		{"join: null", "POST", "/v1/rooms/join", `null`, "want a JSON object"},
		{"join: oversized", "POST", "/v1/rooms/join", `{"room":"#` + strings.Repeat("a", maxRoomBody) + `"}`, "larger than 4096 bytes"},
		{"join: parameter", "POST", "/v1/rooms/join?room=%23a", `{"room":"#a"}`, "takes none"},
		{"leave: no room", "POST", "/v1/rooms/leave", `{"room":null}`, `"room" is required`},
		{"leave: bad syntax", "POST", "/v1/rooms/leave", `{"room" "#a"}`, "malformed JSON"},
		{"leave: form body", "POST", "/v1/rooms/leave", `room=%23a`, "want a JSON object"},
		{"members: no room", "GET", "/v1/rooms/members", "", `"room" is required`},
		{"members: empty room", "GET", "/v1/rooms/members?room=", "", `"room" is required`},
		{"members: an unescaped # (curl sends nothing after it)", "GET", "/v1/rooms/members?room=", "", "%23"},
		{"members: repeated", "GET", "/v1/rooms/members?room=%23a&room=%23b", "", "given 2 times"},
		{"members: unknown parameter", "GET", "/v1/rooms/members?name=%23a", "", `unknown query parameter "name" (known: room)`},
		{"members: bad escape", "GET", "/v1/rooms/members?room=%zz", "", "query string"},
		{"rooms: parameter", "GET", "/v1/rooms?joined=true", "", "takes none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.callLog())
			status, e, _, _ := rawDo(t, hc, tc.method, tc.target, tc.body)
			if status != 400 || e.Code != CodeInvalid || !strings.Contains(e.Message, tc.want) {
				t.Errorf("reply %d %+v, want 400 invalid mentioning %q", status, e, tc.want)
			}
			if calls := f.callLog()[before:]; len(calls) > 0 {
				t.Errorf("the fake was called: %v", calls)
			}
		})
	}
}

// TestHugeBodyIsCutOff: a body far over the limit is not read to its end.
func TestHugeBodyIsCutOff(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	body := `{"to":"bob","text":"` + strings.Repeat("a", 16<<20) + `"}`
	req, _ := http.NewRequest("POST", "http://lanchat/v1/messages", strings.NewReader(body))
	resp, err := rawClient(sock).Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	} else {
		// The server hung up while the client still wrote: refused too.
		t.Logf("a 16 MiB body: %v", err)
	}
	if calls := f.callLog(); len(calls) > 0 {
		t.Errorf("the fake was called: %v", calls)
	}
	// The server still serves.
	if _, err := NewClient(sock).Self(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	hc := rawClient(sock)
	for _, tc := range []struct {
		method, target string
		status         int
		code, allow    string
	}{
		{"GET", "/", 404, CodeNotFound, ""},
		{"GET", "/v2/self", 404, CodeNotFound, ""},
		{"GET", "/v1/self/", 404, CodeNotFound, ""},
		{"GET", "/v1/messages/m1", 404, CodeNotFound, ""},
		{"POST", "/v1/nothing", 404, CodeNotFound, ""},
		{"POST", "/v1/self", 405, CodeInvalid, "GET, HEAD"},
		{"DELETE", "/v1/messages", 405, CodeInvalid, "POST"},
		{"GET", "/v1/status", 405, CodeInvalid, "PUT"},
		{"POST", "/v1/status", 405, CodeInvalid, "PUT"},
		{"POST", "/v1/rooms", 405, CodeInvalid, "GET, HEAD"},
		{"GET", "/v1/rooms/join", 405, CodeInvalid, "POST"},
		{"PUT", "/v1/rooms/leave", 405, CodeInvalid, "POST"},
		{"DELETE", "/v1/rooms/members", 405, CodeInvalid, "GET, HEAD"},
		{"GET", "/v1/rooms/", 404, CodeNotFound, ""},
		{"GET", "/v1/rooms/general", 404, CodeNotFound, ""},
		{"POST", "/v1/rooms/delete", 404, CodeNotFound, ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			status, e, resp, _ := rawDo(t, hc, tc.method, tc.target, "")
			if status != tc.status || e.Code != tc.code || e.Message == "" {
				t.Errorf("reply %d %+v, want %d %s", status, e, tc.status, tc.code)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
	if calls := f.callLog(); len(calls) > 0 {
		t.Errorf("the fake was called: %v", calls)
	}
}

func TestRefusesOtherUID(t *testing.T) {
	f := newFake()
	cfg := testConfig()
	cfg.UID++ // somebody else's node
	sock, _ := serve(t, f, cfg)
	_, err := NewClient(sock).Peers(ctxFor(t, 10*time.Second))
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("Peers: %v, want forbidden", err)
	}
	status, e, _, _ := rawDo(t, rawClient(sock), "POST", "/v1/messages", `{"to":"bob","text":"hi"}`)
	if status != 403 || e.Code != CodeForbidden || !strings.Contains(e.Message, "uid") {
		t.Errorf("reply %d %+v, want 403 forbidden naming the uid", status, e)
	}
	if calls := f.callLog(); len(calls) > 0 {
		t.Errorf("the fake was called: %v", calls)
	}
}

// TestRefusesUnknownCredentials: the handler served without ConnContext
// (or on a socket that is not Unix) refuses every request.
func TestRefusesUnknownCredentials(t *testing.T) {
	f := newFake()
	rec := recordRequest(NewHandler(f, nil), context.Background(), "GET", "/v1/self", "")
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), `"code":"forbidden"`) {
		t.Errorf("reply %d %s, want 403 forbidden", rec.Code, rec.Body)
	}
	if calls := f.callLog(); len(calls) > 0 {
		t.Errorf("the fake was called: %v", calls)
	}
}

func TestConnectWithoutNode(t *testing.T) {
	dir := shortDir(t)
	ctx := ctxFor(t, 10*time.Second)
	for _, tc := range []struct {
		name  string
		setup func(path string)
	}{
		{"no socket", func(string) {}},
		{"stale socket", func(path string) { staleSocket(t, path) }},
	} { // a regular file there is ErrUnsafeSocket: TestClientRefusesSocketNotOurs
		t.Run(tc.name, func(t *testing.T) {
			path := dir + "/" + strings.ReplaceAll(tc.name, " ", "-")
			tc.setup(path)
			c, err := Connect(ctx, path)
			if !errors.Is(err, ErrNoNode) || c != nil {
				t.Fatalf("Connect = %v, %v; want ErrNoNode", c, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the socket", err)
			}
			if _, err := NewClient(path).Outbox(ctx); !errors.Is(err, ErrNoNode) {
				t.Errorf("Outbox: %v, want ErrNoNode", err)
			}
			if err := NewClient(path).Events(ctx, func(Event) error { return nil }); !errors.Is(err, ErrNoNode) {
				t.Errorf("Events: %v, want ErrNoNode", err)
			}
		})
	}
	t.Run("a node", func(t *testing.T) {
		sock, _ := serve(t, newFake(), testConfig())
		c, err := Connect(ctx, sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

// TestCallLostWhenNodeStops: a call in flight when the node's server
// closes fails with ErrClosed.
func TestCallLostWhenNodeStops(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	sock, srv := serve(t, f, testConfig())
	c := NewClient(sock)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), SendRequest{To: "bob", Text: "hi", Wait: true})
		errc <- err
	}()
	waitFor(t, 10*time.Second, func() error {
		if !slices.Contains(f.callLog(), "Send") {
			return errors.New("Send not called yet")
		}
		return nil
	})
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Send: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send still waits after the server closed")
	}
	// And after: nothing answers.
	if _, err := c.Self(ctxFor(t, 5*time.Second)); !errors.Is(err, ErrNoNode) {
		t.Errorf("Self after close: %v, want ErrNoNode", err)
	}
}

// TestShutdownEndsWaitingCalls: a call waiting in the node when the
// server shuts down fails with ErrClosed, and Shutdown does not wait for
// it to time out.
func TestShutdownEndsWaitingCalls(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	sock, srv := serve(t, f, testConfig())
	errc := make(chan error, 1)
	go func() {
		_, err := NewClient(sock).Send(context.Background(), SendRequest{To: "bob", Text: "hi", Wait: true})
		errc <- err
	}()
	waitFor(t, 10*time.Second, func() error {
		if !slices.Contains(f.callLog(), "Send") {
			return errors.New("Send not called yet")
		}
		return nil
	})
	if err := srv.Shutdown(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send: %v, want ErrClosed", err)
	}
}

func TestContextEndsCall(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	sock, _ := serve(t, f, testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := NewClient(sock).Send(ctx, SendRequest{To: "bob", Text: "hi"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send: %v, want the context's error", err)
	}
}
