package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"lanchat/node/api"
)

// fakeNode is an api.API with canned replies that records what it is
// asked. served puts it on a control socket in a data directory, so a
// command run with that --data-dir talks to it exactly as it talks to a
// running node: through api.Client and the API's HTTP server.
type fakeNode struct {
	mu    sync.Mutex // guards the fields below
	calls []string
	errs  map[string]error // by method name

	self      api.Self
	rooms     []api.Room
	members   map[string][]api.RoomMember
	sendReply api.SendReply
	history   []api.HistoryEntry

	sendReq   api.SendRequest
	histQ     api.HistoryQuery
	roomReq   api.RoomRequest
	retReq    api.RetentionRequest
	membersOf string
	contacts  []api.Contact
	trustReq  api.TrustRequest
	doctor    api.DoctorReport
	doctorQ   api.DoctorQuery
}

const (
	selfID = "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"
	bobID  = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	carlID = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
)

var (
	selfRef    = api.PeerRef{ID: selfID, Name: "alice"}
	bobRef     = api.PeerRef{ID: bobID, Name: "bob"}
	generalRef = api.PeerRef{ID: "#general", Name: "#general"}
)

func newFakeNode() *fakeNode {
	return &fakeNode{
		errs: map[string]error{},
		self: api.Self{ID: selfID, Name: "alice", State: "available", Running: true},
		rooms: []api.Room{
			{Name: "#general", Joined: true, MembersOnline: 3, MembersTotal: 5, Unread: 2},
		},
		members: map[string][]api.RoomMember{"#general": {
			{PeerRef: selfRef, State: "available", Online: true},
			{PeerRef: bobRef, State: "away", Online: true},
			{PeerRef: api.PeerRef{ID: carlID, Name: "carl"}, State: "offline"},
		}},
	}
}

// called records a call and returns the error set for it.
func (f *fakeNode) called(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.errs[name]
}

// callLog is the calls so far; the first of a command is the Self that
// api.Connect makes to see whether a node answers.
func (f *fakeNode) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeNode) setErr(method string, err error) {
	f.mu.Lock()
	f.errs[method] = err
	f.mu.Unlock()
}

func (f *fakeNode) Self(ctx context.Context) (api.Self, error) {
	if err := f.called("Self"); err != nil {
		return api.Self{}, err
	}
	return f.self, nil
}

func (f *fakeNode) Peers(ctx context.Context) ([]api.Peer, error) {
	return nil, f.called("Peers")
}

func (f *fakeNode) SetStatus(ctx context.Context, req api.StatusRequest) (api.StatusReply, error) {
	return api.StatusReply{State: req.State, Text: req.Text, Live: true}, f.called("SetStatus")
}

func (f *fakeNode) Send(ctx context.Context, req api.SendRequest) (api.SendReply, error) {
	f.mu.Lock()
	f.sendReq = req
	f.mu.Unlock()
	if err := f.called("Send"); err != nil {
		return api.SendReply{}, err
	}
	return f.sendReply, nil
}

func (f *fakeNode) History(ctx context.Context, q api.HistoryQuery) ([]api.HistoryEntry, error) {
	f.mu.Lock()
	f.histQ = q
	f.mu.Unlock()
	if err := f.called("History"); err != nil {
		return nil, err
	}
	return f.history, nil
}

func (f *fakeNode) Outbox(ctx context.Context) ([]api.OutboxEntry, error) {
	return nil, f.called("Outbox")
}

func (f *fakeNode) MarkRead(ctx context.Context, req api.ReadRequest) error {
	return f.called("MarkRead")
}

func (f *fakeNode) Rooms(ctx context.Context) ([]api.Room, error) {
	if err := f.called("Rooms"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rooms), nil
}

func (f *fakeNode) JoinRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	f.mu.Lock()
	f.roomReq = req
	f.mu.Unlock()
	if err := f.called("JoinRoom"); err != nil {
		return api.Room{}, err
	}
	return api.Room{Name: req.Room, Joined: true, MembersOnline: 3, MembersTotal: 5}, nil
}

func (f *fakeNode) LeaveRoom(ctx context.Context, req api.RoomRequest) (api.Room, error) {
	f.mu.Lock()
	f.roomReq = req
	f.mu.Unlock()
	if err := f.called("LeaveRoom"); err != nil {
		return api.Room{}, err
	}
	return api.Room{Name: req.Room, MembersOnline: 2, MembersTotal: 4}, nil
}

func (f *fakeNode) SetRetention(ctx context.Context, req api.RetentionRequest) (api.Room, error) {
	f.mu.Lock()
	f.retReq = req
	f.mu.Unlock()
	if err := f.called("SetRetention"); err != nil {
		return api.Room{}, err
	}
	return api.Room{Name: req.Room, Joined: true, MembersOnline: 1, MembersTotal: 2, Retention: req.Retention}, nil
}

func (f *fakeNode) RoomMembers(ctx context.Context, room string) ([]api.RoomMember, error) {
	f.mu.Lock()
	f.membersOf = room
	f.mu.Unlock()
	if err := f.called("RoomMembers"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.members[room]
	if !ok {
		return nil, api.Errorf(api.CodeNotMember, "not a member of "+room)
	}
	return slices.Clone(m), nil
}

func (f *fakeNode) Events(ctx context.Context, fn func(api.Event) error) error {
	return api.ErrNotRunning
}

// served serves f on the control socket of a new data directory until the
// test ends, and returns the directory.
func served(t *testing.T, f *fakeNode) string {
	t.Helper()
	// Short, so the socket's path fits the 107 bytes a Unix socket has.
	dir, err := os.MkdirTemp("", "lccli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen(filepath.Join(dir, "control.sock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(f, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return dir
}

// lanchat runs the command line on dir with args and returns its exit
// code, standard output and standard error.
func lanchat(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"--data-dir", dir}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func (f *fakeNode) Contacts(ctx context.Context) ([]api.Contact, error) {
	if err := f.called("Contacts"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.contacts), nil
}

func (f *fakeNode) Trust(ctx context.Context, req api.TrustRequest) (api.Contact, error) {
	return f.setTrust("Trust", req, true)
}

func (f *fakeNode) Untrust(ctx context.Context, req api.TrustRequest) (api.Contact, error) {
	return f.setTrust("Untrust", req, false)
}

func (f *fakeNode) setTrust(method string, req api.TrustRequest, trusted bool) (api.Contact, error) {
	f.mu.Lock()
	f.trustReq = req
	f.mu.Unlock()
	if err := f.called(method); err != nil {
		return api.Contact{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.contacts {
		if strings.HasPrefix(f.contacts[i].ID, req.ID) {
			f.contacts[i].Trusted = trusted
			return f.contacts[i], nil
		}
	}
	return api.Contact{}, api.Errorf(api.CodeUnknownRecipient, "no such peer")
}

func (f *fakeNode) Doctor(ctx context.Context, q api.DoctorQuery) (api.DoctorReport, error) {
	if err := f.called("Doctor"); err != nil {
		return api.DoctorReport{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.doctorQ = q
	return f.doctor, nil
}
