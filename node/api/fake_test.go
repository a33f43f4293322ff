package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lanchat/internal/testutil"
)

// fake is an API that records what it is asked and answers with canned
// replies. Its Events behaves as the node's: each subscriber has a
// bounded queue, and one that overflows is sent a Resync and dropped.
type fake struct {
	mu      sync.Mutex // guards the fields below
	calls   []string   // method names, in call order
	status  StatusRequest
	sendReq SendRequest
	hist    HistoryQuery
	read    ReadRequest
	roomReq RoomRequest // the last join or leave
	// membersOf is the last room whose members were asked for.
	membersOf string
	err       error         // when set, every method but Events returns it
	block     chan struct{} // when set, Send waits for it to close (or for its ctx)

	self        Self
	peers       []Peer
	statusReply StatusReply
	sendReply   SendReply
	history     []HistoryEntry
	outbox      []OutboxEntry
	rooms       []Room
	members     map[string][]RoomMember // by room
	contacts    []Contact
	trustReq    TrustRequest // the last trust or untrust
	doctor      DoctorReport
	doctorQ     DoctorQuery

	queue int // each subscriber's queue
	seq   uint64
	subs  map[*fakeSub]bool

	closed    chan struct{} // closed by close: Events returns ErrClosed
	closeOnce sync.Once
}

// fakeSub is one subscriber.
type fakeSub struct {
	q        chan Event
	overflow chan struct{} // closed when q overflowed
	dropped  int           // guarded by fake.mu
}

var (
	t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

	alice = Peer{ID: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Name: "alice", State: "available",
		StatusText: "coding", Addr: "10.0.0.1", GossipPort: 7946, Port: 7947, Verified: true, LastSeen: t0}
	bob = Peer{ID: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", Name: "bob", State: "away",
		StatusText: "lunch", Addr: "10.0.0.2", GossipPort: 7946, Port: 7947, LastSeen: t0.Add(time.Minute)}
	aliceRef = PeerRef{ID: alice.ID, Name: alice.Name}
	bobRef   = PeerRef{ID: bob.ID, Name: bob.Name}
)

func newFake() *fake {
	return &fake{
		self: Self{ID: "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS", Name: "self", State: "busy",
			StatusText: "deep work", Running: true, Addr: "10.0.0.9", GossipPort: 7946, Port: 7947,
			Control: "/home/self/.local/share/lanchat/control.sock", MDNS: true},
		peers:       []Peer{alice, bob},
		statusReply: StatusReply{State: "away", Text: "lunch", Live: true},
		sendReply:   SendReply{ID: "m1", To: bobRef, State: "delivered"},
		history: []HistoryEntry{
			{ID: "m0", From: bobRef, To: aliceRef, Text: "hi", Time: t0, State: "read"},
			{ID: "m1", From: aliceRef, To: bobRef, Text: "hello <&> \"you\"\n", Time: t0.Add(time.Second), Outgoing: true, State: "delivered"},
		},
		outbox: []OutboxEntry{{Peer: bobRef, Count: 3, Oldest: t0}},
		rooms: []Room{
			{Name: "#general", Joined: true, MembersOnline: 2, MembersTotal: 3, Unread: 4},
			{Name: "#ops", MembersOnline: 1, MembersTotal: 1},
		},
		members: map[string][]RoomMember{"#general": {
			{PeerRef: aliceRef, State: "available", Online: true},
			{PeerRef: bobRef, State: "offline"},
		}},
		queue:  64,
		subs:   make(map[*fakeSub]bool),
		closed: make(chan struct{}),
	}
}

// called records a call and returns the error to answer with.
func (f *fake) called(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.err
}

// callLog returns the calls so far.
func (f *fake) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fake) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fake) Self(ctx context.Context) (Self, error) {
	if err := f.called("Self"); err != nil {
		return Self{}, err
	}
	return f.self, nil
}

func (f *fake) Peers(ctx context.Context) ([]Peer, error) {
	if err := f.called("Peers"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers), nil
}

func (f *fake) SetStatus(ctx context.Context, req StatusRequest) (StatusReply, error) {
	f.mu.Lock()
	f.status = req
	f.mu.Unlock()
	if err := f.called("SetStatus"); err != nil {
		return StatusReply{}, err
	}
	return f.statusReply, nil
}

func (f *fake) Send(ctx context.Context, req SendRequest) (SendReply, error) {
	f.mu.Lock()
	f.sendReq = req
	block := f.block
	f.mu.Unlock()
	if err := f.called("Send"); err != nil {
		return SendReply{}, err
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return SendReply{}, ctx.Err()
		}
	}
	return f.sendReply, nil
}

func (f *fake) History(ctx context.Context, q HistoryQuery) ([]HistoryEntry, error) {
	f.mu.Lock()
	f.hist = q
	f.mu.Unlock()
	if err := f.called("History"); err != nil {
		return nil, err
	}
	return f.history, nil
}

func (f *fake) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	if err := f.called("Outbox"); err != nil {
		return nil, err
	}
	return f.outbox, nil
}

func (f *fake) MarkRead(ctx context.Context, req ReadRequest) error {
	f.mu.Lock()
	f.read = req
	f.mu.Unlock()
	return f.called("MarkRead")
}

func (f *fake) Events(ctx context.Context, fn func(Event) error) error {
	f.mu.Lock()
	f.calls = append(f.calls, "Events")
	s := &fakeSub{q: make(chan Event, f.queue), overflow: make(chan struct{})}
	f.seq++
	snap := Snapshot{Seq: f.seq, Self: f.self, Peers: slices.Clone(f.peers), Rooms: slices.Clone(f.rooms)}
	f.subs[s] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()

	if err := fn(snap); err != nil {
		return err
	}
	last := snap.Seq
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.closed:
			return ErrClosed
		case <-s.overflow:
			f.mu.Lock()
			n := s.dropped
			f.mu.Unlock()
			_ = fn(Resync{Seq: last, Dropped: n, Reason: "too slow"})
			return ErrResync
		case ev := <-s.q:
			if err := fn(ev); err != nil {
				return err
			}
			last = ev.EventSeq()
		}
	}
}

// publish numbers ev and queues it for every subscriber, dropping it for
// those whose queue is full. It returns ev as numbered.
func (f *fake) publish(ev Event) Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	ev = ev.WithSeq(f.seq)
	for s := range f.subs {
		if s.dropped > 0 {
			s.dropped++
			continue
		}
		select {
		case s.q <- ev:
		default:
			s.dropped++
			close(s.overflow)
		}
	}
	return ev
}

// subscribers counts the live subscriptions, and those that overflowed.
func (f *fake) subscribers() (live, overflowed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		live++
		if s.dropped > 0 {
			overflowed++
		}
	}
	return live, overflowed
}

// close ends every subscription with ErrClosed, as a stopping node does.
func (f *fake) close() { f.closeOnce.Do(func() { close(f.closed) }) }

// testConfig is DefaultConfig with timeouts for tests.
func testConfig() Config {
	c := DefaultConfig()
	c.EventWriteTimeout = 30 * time.Second // longer than any stall a test makes on purpose
	return c
}

// shortDir is a new temporary directory with a short path, so a socket
// in it fits the 107 bytes a Unix socket path may have.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lcapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serve serves impl with cfg on a real control socket, through Listen and
// NewServer, until the test ends. It returns the socket and the server.
func serve(t testing.TB, impl API, cfg Config) (string, *http.Server) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "control.sock")
	log := testLogger(t)
	ln, err := Listen(sock, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := cfg.NewServer(impl, log)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock, srv
}

// rawClient is a plain HTTP client of the socket, for what Client cannot
// send.
func rawClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
}

// rawDo makes one request and returns the status, the Error decoded from
// the reply if there is one, and the reply.
func rawDo(t testing.TB, hc *http.Client, method, target, body string) (int, Error, *http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://lanchat"+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read reply: %v", method, target, err)
	}
	var e Error
	if resp.StatusCode >= 400 {
		if err := jsonUnmarshalStrict(data, &e); err != nil {
			t.Errorf("%s %s: error reply %q is not an Error: %v", method, target, data, err)
		}
	}
	return resp.StatusCode, e, resp, string(data)
}

func jsonUnmarshalStrict(data []byte, v any) error { return decodeJSON(data, v) }

// testLogger writes to the test's log until the test ends.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

// waitFor polls cond until it returns nil, failing the test with its last
// error after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testutil.WaitForErr(t, timeout, cond)
}

// ctxFor is a context that ends after d or with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (f *fake) Rooms(ctx context.Context) ([]Room, error) {
	if err := f.called("Rooms"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rooms), nil
}

// JoinRoom joins req.Room in the fake's list (making the room if it is
// not there) and answers with it.
func (f *fake) JoinRoom(ctx context.Context, req RoomRequest) (Room, error) {
	f.mu.Lock()
	f.roomReq = req
	f.mu.Unlock()
	if err := f.called("JoinRoom"); err != nil {
		return Room{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.rooms, func(r Room) bool { return r.Name == req.Room })
	if i < 0 {
		f.rooms = append(f.rooms, Room{Name: req.Room})
		i = len(f.rooms) - 1
	}
	if r := &f.rooms[i]; !r.Joined {
		r.Joined = true
		r.MembersOnline++
		r.MembersTotal++
	}
	return f.rooms[i], nil
}

// LeaveRoom leaves req.Room; leaving a room the fake is not in is
// not_member, as the node answers.
func (f *fake) LeaveRoom(ctx context.Context, req RoomRequest) (Room, error) {
	f.mu.Lock()
	f.roomReq = req
	f.mu.Unlock()
	if err := f.called("LeaveRoom"); err != nil {
		return Room{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.rooms, func(r Room) bool { return r.Name == req.Room && r.Joined })
	if i < 0 {
		return Room{}, &Error{Code: CodeNotMember, Message: "not a member of " + req.Room}
	}
	r := &f.rooms[i]
	r.Joined = false
	r.MembersOnline--
	r.MembersTotal--
	return *r, nil
}

// SetRetention sets the retention of a canned room this fake is in.
func (f *fake) SetRetention(ctx context.Context, req RetentionRequest) (Room, error) {
	if err := f.called("SetRetention"); err != nil {
		return Room{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.rooms, func(r Room) bool { return r.Name == req.Room && r.Joined })
	if i < 0 {
		return Room{}, &Error{Code: CodeNotMember, Message: "not a member of " + req.Room}
	}
	f.rooms[i].Retention = req.Retention
	return f.rooms[i], nil
}

// RoomMembers answers with the canned members of room (none for a room
// it has none for).
func (f *fake) RoomMembers(ctx context.Context, room string) ([]RoomMember, error) {
	f.mu.Lock()
	f.membersOf = room
	f.mu.Unlock()
	if err := f.called("RoomMembers"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members[room]), nil
}

func (f *fake) Contacts(ctx context.Context) ([]Contact, error) {
	if err := f.called("Contacts"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.contacts), nil
}

// Trust marks req.ID trusted in the fake's book; an id it does not hold
// is unknown_recipient.
func (f *fake) Trust(ctx context.Context, req TrustRequest) (Contact, error) {
	return f.setTrust("Trust", req, true)
}

func (f *fake) Untrust(ctx context.Context, req TrustRequest) (Contact, error) {
	return f.setTrust("Untrust", req, false)
}

func (f *fake) setTrust(method string, req TrustRequest, trusted bool) (Contact, error) {
	f.mu.Lock()
	f.trustReq = req
	f.mu.Unlock()
	if err := f.called(method); err != nil {
		return Contact{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.contacts {
		if f.contacts[i].ID == req.ID {
			f.contacts[i].Trusted = trusted
			return f.contacts[i], nil
		}
	}
	return Contact{}, Errorf(CodeUnknownRecipient, "no such peer")
}

func (f *fake) Doctor(ctx context.Context, q DoctorQuery) (DoctorReport, error) {
	if err := f.called("Doctor"); err != nil {
		return DoctorReport{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.doctorQ = q
	return f.doctor, nil
}
