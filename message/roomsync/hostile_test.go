package roomsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/mesh"
	"lanchat/message"
)

// scripted is a hostile server: it reads one request and writes what
// script returns for it, then reads until the client closes, recording
// the reason of the client's CLOSE frame. With endless set, it writes
// endless's frame again and again after the script, until it cannot.
type scripted struct {
	script  func() []byte
	endless []byte

	mu     sync.Mutex // guards reason
	reason string     // the client's CLOSE reason
}

func (s *scripted) handle(st message.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ReadFrame(st); err != nil {
		return
	}
	st.Write(s.script())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := ReadFrame(st)
			if err != nil {
				return
			}
			if f.Type == FrameClose {
				s.mu.Lock()
				s.reason = string(f.Payload)
				s.mu.Unlock()
			}
		}
	}()
	for s.endless != nil {
		if _, err := st.Write(s.endless); err != nil {
			break
		}
	}
	<-done
}

func (s *scripted) closeReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

func headF(author string, after, until uint64) []byte {
	return appendFrame(nil, FrameHead, appendHead(nil, head{author: author, after: after, until: until}))
}

func pageF(evs ...[]byte) []byte { return appendFrame(nil, FramePage, appendPage(nil, evs)) }

var doneF = appendFrame(nil, FrameDone, nil)

// A server whose answer breaks the protocol or carries an envelope that
// fails its checks ends the pull with ErrInvalid naming it; nothing of
// the offending page reaches the sink, and the client tells the server
// why it closes.
func TestHostileServer(t *testing.T) {
	const room = "#general"
	a, b := seededIdentity(t, 1), seededIdentity(t, 2)
	ev := func(who identity, r string, seq uint64) []byte { return sealEvent(t, who, r, seq, "x") }
	a1, a2, a3 := ev(a, room, 1), ev(a, room, 2), ev(a, room, 3)
	tampered := bytes.Clone(a2)
	tampered[len(tampered)-65] ^= 1 // the body
	direct, err := message.Seal(&message.Envelope{To: b.id, Kind: message.KindText, Body: "x"}, a.key)
	if err != nil {
		t.Fatal(err)
	}
	oversize := binary.BigEndian.AppendUint32([]byte{'L', 'S', byte(FramePage)}, MaxPage+1)
	badCount := pageF(a1)
	binary.BigEndian.PutUint16(badCount[FrameHeaderLen:], 3)

	tests := []struct {
		name     string
		script   []byte
		endless  []byte
		accepted int   // pages the sink may take before the fault
		also     error // a further sentinel the error wraps
	}{
		{"bad signature", frames(headF(a.id, 0, 3), pageF(a1, tampered, a3)), nil, 0, message.ErrBadSignature},
		{"gap", frames(headF(a.id, 0, 3), pageF(a1, a3)), nil, 0, nil},
		{"wrong room", frames(headF(a.id, 0, 1), pageF(ev(a, "#other", 1))), nil, 0, nil},
		{"wrong author", frames(headF(a.id, 0, 1), pageF(ev(b, room, 1))), nil, 0, nil},
		{"version 1 envelope", frames(headF(a.id, 0, 1), pageF(direct)), nil, 0, nil},
		{"replayed page", frames(headF(a.id, 0, 3), pageF(a1), pageF(a1)), nil, 1, nil},
		{"more than announced in a page", frames(headF(a.id, 0, 1), pageF(a1, a2)), nil, 0, nil},
		{"endless pages", frames(headF(a.id, 0, 2), pageF(a1, a2)), pageF(a3), 1, nil},
		{"page without a head", frames(pageF(a1)), nil, 0, nil},
		{"head after what the client holds", frames(headF(a.id, 5, 6)), nil, 0, nil},
		{"head with until not after after", append(binary.BigEndian.AppendUint32([]byte{'L', 'S', byte(FrameHead)}, headLen), appendHead(nil, head{author: a.id, after: 0, until: 0})...), nil, 0, message.ErrMalformed},
		{"head before the previous author is complete", frames(headF(a.id, 0, 3), pageF(a1), headF(b.id, 0, 1)), nil, 1, nil},
		{"done before the announced events", frames(headF(a.id, 0, 3), pageF(a1, a2), doneF), nil, 1, nil},
		{"oversize frame", oversize, nil, 0, message.ErrTooLarge},
		{"page count beyond its entries", frames(headF(a.id, 0, 3), badCount), nil, 0, message.ErrMalformed},
		{"empty page", frames(headF(a.id, 0, 3), appendFrame(nil, FramePage, []byte{0, 0})), nil, 0, message.ErrMalformed},
		{"unknown frame type", []byte("LS\x42\x00\x00\x00\x00"), nil, 0, message.ErrMalformed},
		{"client frame from the server", appendFrame(nil, FrameIndex, nil), nil, 0, message.ErrMalformed},
		{"garbage", []byte("HTTP/1.1 200 OK\r\n\r\n"), nil, 0, message.ErrMalformed},
		{"unknown refusal code", appendFrame(nil, FrameRefuse, []byte{9, 'x'}), nil, 0, message.ErrMalformed},
		// Skips: only the first event after a HEAD may start above the
		// next expected (a pruned server's witness), and not past until.
		{"skip within an author's pages", frames(headF(a.id, 0, 3), pageF(a1), pageF(a3)), nil, 1, nil},
		{"skip past until", frames(headF(a.id, 0, 2), pageF(a3)), nil, 0, nil},
		{"state after a head", frames(headF(a.id, 0, 1), pageF(a1), appendFrame(nil, FrameState, appendPage(nil, [][]byte{retention(t, a, room, 4)}))), nil, 1, message.ErrMalformed},
		{"state twice", frames(appendFrame(nil, FrameState, appendPage(nil, [][]byte{retention(t, a, room, 4)})), appendFrame(nil, FrameState, appendPage(nil, [][]byte{retention(t, a, room, 4)}))), nil, 1, message.ErrMalformed},
		{"state that is not a setting", appendFrame(nil, FrameState, appendPage(nil, [][]byte{a1})), nil, 0, message.ErrMalformed},
		{"state of another room", appendFrame(nil, FrameState, appendPage(nil, [][]byte{retention(t, a, "#other", 4)})), nil, 0, message.ErrMalformed},
		{"state of too many settings", appendFrame(nil, FrameState, appendPage(nil, slices.Repeat([][]byte{retention(t, a, room, 4)}, MaxState+1))), nil, 0, message.ErrTooLarge},
	}
	n := newTestNet()
	client := newPeer(t, n, nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := tt.script
			evil := &scripted{script: func() []byte { return script }, endless: tt.endless}
			server := newPeer(t, n, nil, evil.handle)
			sink := newMemSource()
			_, err := client.s.Pull(ctxT(t), server.id.id, room, nil, sink)
			if !errors.Is(err, ErrInvalid) || (tt.also != nil && !errors.Is(err, tt.also)) {
				t.Fatalf("Pull = %v, want ErrInvalid (and %v)", err, tt.also)
			}
			if !strings.Contains(err.Error(), mesh.ShortID(server.id.id)) {
				t.Fatalf("error %q does not name the server", err)
			}
			if got := sink.acceptCalls(); got != tt.accepted {
				t.Fatalf("sink took %d pages, want %d", got, tt.accepted)
			}
			for au, evs := range sink.events(room) {
				for i, e := range evs {
					if env, err := message.Open(e); err != nil || env.Author != au || env.Seq != uint64(i+1) {
						t.Fatalf("sink holds a bad event: %v", err)
					}
				}
			}
			server.stop() // waits for the handler, which records the reason
			if r := evil.closeReason(); r == "" {
				t.Fatal("the client closed without saying why")
			} else {
				t.Logf("client's CLOSE: %q", r)
			}
		})
	}
}

// A server refusing with a reason, or closing with one, ends the pull
// with an error that says so.
func TestServerRefusesOrCloses(t *testing.T) {
	n := newTestNet()
	client := newPeer(t, n, nil, nil)
	for _, tt := range []struct {
		name   string
		script []byte
		want   error
		text   string
	}{
		{"unavailable", appendFrame(nil, FrameRefuse, appendRefuse(nil, refuseUnavailable, "disk on fire")), ErrRefused, "disk on fire"},
		{"closed", appendFrame(nil, FrameClose, []byte("going away")), errPeerClosed, "going away"},
		{"cut", nil, io.ErrUnexpectedEOF, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			script := tt.script
			evil := &scripted{script: func() []byte { return script }}
			server := newPeer(t, n, nil, func(st message.Stream) {
				if script == nil {
					ReadFrame(st)
					st.Write([]byte("LS\x05\x00\x00\x01\x00partial"))
					st.Close()
					return
				}
				evil.handle(st)
			})
			_, err := client.s.Pull(ctxT(t), server.id.id, "#general", nil, newMemSource())
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Pull = %v, want %q", err, tt.text)
			}
			if tt.want != io.ErrUnexpectedEOF && !errors.Is(err, tt.want) {
				t.Fatalf("Pull = %v, want %v", err, tt.want)
			}
		})
	}
}

// A server whose index breaks the rules is refused, naming it.
func TestHostileIndex(t *testing.T) {
	a, b := seededIdentity(t, 1), seededIdentity(t, 2)
	member := func(who identity, room, kind string, seq uint64) []byte {
		env := &message.Envelope{Conversation: room, Seq: seq, Kind: kind}
		sealed, err := message.Seal(env, who.key)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	direct, err := message.Seal(&message.Envelope{To: b.id, Kind: message.KindText}, a.key)
	if err != nil {
		t.Fatal(err)
	}
	tampered := member(a, "#x", message.KindJoin, 1)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name string
		page []byte
	}{
		{"another author", pageF(member(b, "#general", message.KindJoin, 1))},
		{"not a membership", pageF(sealEvent(t, a, "#general", 2, "hello"))},
		{"a direct message", pageF(direct)},
		{"a room twice", pageF(member(a, "#general", message.KindJoin, 1), member(a, "#general", message.KindLeave, 2))},
		{"bad signature", pageF(tampered)},
		{"more than MaxIndex", pageF(member(a, "#a", message.KindJoin, 1), member(a, "#b", message.KindJoin, 1), member(a, "#c", message.KindJoin, 1))},
	}
	n := newTestNet()
	client := newPeer(t, n, func(c *Config) { c.MaxIndex = 2 }, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := frames(tt.page, doneF)
			evil := &scripted{script: func() []byte { return script }}
			server := newPeerAs(t, n, a, nil, evil.handle)
			got, err := client.s.Index(ctxT(t), server.id.id)
			if !errors.Is(err, ErrInvalid) || got != nil || !strings.Contains(err.Error(), mesh.ShortID(a.id)) {
				t.Fatalf("Index = %d, %v; want ErrInvalid naming the server", len(got), err)
			}
			server.stop()
		})
	}
}

// A client that breaks the protocol gets a CLOSE frame saying why and
// the end of the stream; the server goes on serving others.
func TestHostileClient(t *testing.T) {
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = seededIdentity(t, byte(10+i)).id
	}
	vec := func(k int) Vector {
		v := Vector{}
		for _, id := range ids[:k] {
			v[id] = 1
		}
		return v
	}
	raw := func(room string, entries ...[]byte) []byte {
		p := append([]byte{byte(len(room))}, room...)
		p = binary.BigEndian.AppendUint16(p, uint16(len(entries)))
		for _, e := range entries {
			p = append(p, e...)
		}
		return appendFrame(nil, FramePull, p)
	}
	entry := func(id string, n uint64) []byte { return binary.BigEndian.AppendUint64([]byte(id), n) }
	sorted := vec(2)
	var lo, hi string
	for id := range sorted {
		if lo == "" || id < lo {
			lo = id
		}
	}
	for id := range sorted {
		if id != lo {
			hi = id
		}
	}
	manyEntries := binary.BigEndian.AppendUint16([]byte{8}, 0)
	manyEntries = append([]byte{8}, "#general"...)
	manyEntries = binary.BigEndian.AppendUint16(manyEntries, 5000)

	tests := []struct {
		name   string
		send   []byte
		reason string // in the CLOSE frame; "" when none is owed
	}{
		{"vector over the cap", appendFrame(nil, FramePull, appendPull(nil, "#general", vec(11))), "too large"},
		{"vector count over the protocol limit", appendFrame(nil, FramePull, manyEntries), "too large"},
		{"length over the limit", binary.BigEndian.AppendUint32([]byte{'L', 'S', byte(FramePull)}, maxPullPayload+1), "too large"},
		{"length 4 GiB", []byte{'L', 'S', byte(FramePull), 0xff, 0xff, 0xff, 0xff}, "too large"},
		{"authors out of order", raw("#general", entry(hi, 1), entry(lo, 1)), "ascending"},
		{"author twice", raw("#general", entry(lo, 1), entry(lo, 2)), "ascending"},
		{"count 0", raw("#general", entry(lo, 0)), "count 0"},
		{"invalid author id", raw("#general", entry(strings.Repeat("!", mesh.IDLen), 1)), "invalid author"},
		{"bad room name", raw("general"), "invalid room"},
		{"entries cut short", raw("#general", entry(lo, 1)[:30]), "malformed"},
		{"server frame from a client", doneF, "unexpected DONE"},
		{"unknown frame type", []byte("LS\x42\x00\x00\x00\x00"), "unknown frame type"},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad frame magic"},
		{"truncated frame then EOF", []byte("LS\x01\x00\x00\x01\x00"), ""},
	}
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.MaxAuthors = 10 }, nil)
	other := newPeer(t, n, nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := rawClient(t, server)
			st.Write(tt.send)
			if tt.reason == "" {
				st.(tlsStream).CloseWrite()
			}
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			var reasons []string
			for {
				f, err := ReadFrame(st)
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") {
						break
					}
					t.Fatalf("want the stream closed, got %v", err)
				}
				if f.Type != FrameClose {
					t.Fatalf("got a %v frame, want CLOSE or the end", f.Type)
				}
				reasons = append(reasons, string(f.Payload))
			}
			if tt.reason != "" && (len(reasons) != 1 || !strings.Contains(reasons[0], tt.reason)) {
				t.Fatalf("CLOSE reasons %q, want one with %q", reasons, tt.reason)
			}
			if _, err := other.s.Pull(ctxT(t), server.id.id, "#general", nil, other.src); err != nil {
				t.Fatalf("after the hostile stream: %v", err)
			}
		})
	}
}

// A client that starts a frame and stalls is cut off after FrameTimeout,
// and one that asks nothing after IdleTimeout, with "idle".
func TestSlowClientsTimeOut(t *testing.T) {
	n := newTestNet()
	server := newPeer(t, n, func(c *Config) { c.FrameTimeout, c.IdleTimeout = 200*time.Millisecond, 300*time.Millisecond }, nil)
	for _, tt := range []struct {
		name, send, reason string
	}{
		{"stalled frame", "LS\x01\x00\x00\x01\x00ab", "not complete"},
		{"idle", "", "idle"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := rawClient(t, server)
			st.Write([]byte(tt.send))
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			f, err := ReadFrame(st)
			if err != nil || f.Type != FrameClose || !strings.Contains(string(f.Payload), tt.reason) {
				t.Fatalf("got %v %q, %v; want CLOSE with %q", f.Type, f.Payload, err, tt.reason)
			}
		})
	}
}
