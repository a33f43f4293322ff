package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config tunes the server side of the API. DefaultConfig works; tests
// shrink the timeouts or name another user. A zero timeout is its
// default.
type Config struct {
	// UID is the only user whose processes are served. A request from a
	// process of another user, or one whose peer credentials are unknown
	// (a connection that did not come through Listen or a Unix socket),
	// is refused with 403 forbidden.
	UID int
	// EventWriteTimeout bounds writing one line of the event stream: a
	// client that reads nothing for this long loses its stream, so a dead
	// client cannot hold the node.
	EventWriteTimeout time.Duration
	// BodyReadTimeout bounds reading a request body.
	BodyReadTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers (NewServer).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long (NewServer).
	IdleTimeout time.Duration
}

// DefaultConfig serves the user running the process.
func DefaultConfig() Config {
	return Config{
		UID:               os.Getuid(),
		EventWriteTimeout: 10 * time.Second,
		BodyReadTimeout:   10 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// withDefaults is c with each zero timeout set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.EventWriteTimeout <= 0 {
		c.EventWriteTimeout = d.EventWriteTimeout
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = d.BodyReadTimeout
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	return c
}

// Request body limits, applied before decoding. A message carries at most
// 64 KiB of text, which JSON escaping can grow sixfold; a status text at
// most 160 bytes; a read request at most MaxReadIDs ids; a room request
// one room name of at most 65 bytes.
const (
	maxSendBody   = 1 << 20
	maxStatusBody = 16 << 10
	maxReadBody   = 1 << 20
	maxRoomBody   = 4 << 10
	// maxHeaderBytes bounds a request's header, its query string included.
	maxHeaderBytes = 64 << 10
)

// route is one endpoint of the API.
type route struct {
	Method string
	Path   string
	Params []string // the query parameters it takes; any other is refused
	serve  func(s *server, w http.ResponseWriter, r *http.Request) error
}

// routes is every endpoint the handler serves. API.md documents each one
// as "`METHOD /path`" (doc_test.go checks both ways).
var routes = []route{
	{Method: "GET", Path: "/v1/self", serve: (*server).self},
	{Method: "GET", Path: "/v1/peers", serve: (*server).peers},
	{Method: "PUT", Path: "/v1/status", serve: (*server).setStatus},
	{Method: "POST", Path: "/v1/messages", serve: (*server).send},
	{Method: "GET", Path: "/v1/history", Params: historyParams, serve: (*server).history},
	{Method: "GET", Path: "/v1/outbox", serve: (*server).outbox},
	{Method: "POST", Path: "/v1/read", serve: (*server).markRead},
	{Method: "GET", Path: "/v1/rooms", serve: (*server).rooms},
	{Method: "POST", Path: "/v1/rooms/join", serve: (*server).joinRoom},
	{Method: "POST", Path: "/v1/rooms/leave", serve: (*server).leaveRoom},
	{Method: "GET", Path: "/v1/rooms/members", Params: membersParams, serve: (*server).roomMembers},
	{Method: "GET", Path: "/v1/contacts", serve: (*server).contacts},
	{Method: "POST", Path: "/v1/contacts/trust", serve: (*server).trust},
	{Method: "POST", Path: "/v1/contacts/untrust", serve: (*server).untrust},
	{Method: "GET", Path: "/v1/doctor", Params: doctorParams, serve: (*server).doctor},
	{Method: "POST", Path: "/v1/rooms/retention", serve: (*server).setRetention},
	{Method: "POST", Path: "/v1/files", serve: (*server).offerFiles},
	{Method: "GET", Path: "/v1/transfers", serve: (*server).transfers},
	{Method: "POST", Path: "/v1/transfers/accept", serve: settleTransfer(true)},
	{Method: "POST", Path: "/v1/transfers/decline", serve: settleTransfer(false)},
	{Method: "POST", Path: "/v1/typing", serve: (*server).typing},
	{Method: "GET", Path: "/v1/events", serve: (*server).events},
}

var (
	historyParams = []string{"peer", "limit", "since", "before", "search", "mark_read"}
	membersParams = []string{"room"}
	doctorParams  = []string{"peer"}
)

// NewHandler serves impl over HTTP with DefaultConfig. It checks the
// peer's uid, which only ConnContext can give it: serve it with
// NewServer, or set ConnContext on an http.Server of your own.
func NewHandler(impl API, log *slog.Logger) http.Handler {
	return DefaultConfig().NewHandler(impl, log)
}

// NewServer is an http.Server for the control socket with DefaultConfig:
// the handler, ConnContext and timeouts wired. Serve it on a listener from
// Listen. Shutdown ends the event streams and the calls still waiting
// (their clients get ErrClosed); Close ends everything at once.
func NewServer(impl API, log *slog.Logger) *http.Server {
	return DefaultConfig().NewServer(impl, log)
}

// NewHandler serves impl over HTTP with c.
func (c Config) NewHandler(impl API, log *slog.Logger) http.Handler {
	c = c.withDefaults()
	s := &server{impl: impl, log: orDiscard(log), cfg: c, mux: http.NewServeMux()}
	for _, rt := range routes {
		s.mux.HandleFunc(rt.Method+" "+rt.Path, func(w http.ResponseWriter, r *http.Request) {
			if err := checkParams(r, rt.Params); err != nil {
				s.writeError(w, r, err)
				return
			}
			if err := rt.serve(s, w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	// Everything the routes do not match: an unknown path, or a known one
	// with another method (the mux prefers this pattern to its own 405).
	s.mux.HandleFunc("/", s.unrouted)
	return s
}

// NewServer is an http.Server serving impl with c.
func (c Config) NewServer(impl API, log *slog.Logger) *http.Server {
	c = c.withDefaults()
	log = orDiscard(log)
	base, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           c.NewHandler(impl, log),
		ConnContext:       ConnContext,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Shutdown waits for connections to go idle, which an event stream
	// never does by itself: ending the base context ends every stream.
	srv.RegisterOnShutdown(cancel)
	return srv
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// server is the handler NewHandler returns.
type server struct {
	impl API
	log  *slog.Logger
	cfg  Config
	mux  *http.ServeMux
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.checkPeer(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// checkPeer refuses a request unless it comes from a process of cfg.UID.
func (s *server) checkPeer(ctx context.Context) error {
	cred, ok := ctx.Value(peerCredKey{}).(peerCred)
	switch {
	case !ok:
		return Errorf(CodeForbidden, "peer credentials unknown: the API is served only on its Unix socket")
	case cred.err != nil:
		return Errorf(CodeForbidden, "peer credentials: "+cred.err.Error())
	case cred.uid != s.cfg.UID:
		return Errorf(CodeForbidden, fmt.Sprintf("this node belongs to uid %d; a process of uid %d may not use it", s.cfg.UID, cred.uid))
	}
	return nil
}

// unrouted answers what no route matches: 405 for a known path with the
// wrong method, 404 for anything else.
func (s *server) unrouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, rt := range routes {
		if rt.Path == r.URL.Path {
			allow = append(allow, rt.Method)
			if rt.Method == "GET" {
				allow = append(allow, "HEAD")
			}
		}
	}
	if len(allow) == 0 {
		s.writeError(w, r, Errorf(CodeNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path)))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeErrorStatus(w, r, http.StatusMethodNotAllowed,
		Errorf(CodeInvalid, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))))
}

func (s *server) self(w http.ResponseWriter, r *http.Request) error {
	v, err := s.impl.Self(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) error {
	v, err := s.impl.Peers(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, orEmpty(v))
	return nil
}

func (s *server) setStatus(w http.ResponseWriter, r *http.Request) error {
	var req StatusRequest
	if err := s.decodeBody(w, r, maxStatusBody, &req); err != nil {
		return err
	}
	v, err := s.impl.SetStatus(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *server) send(w http.ResponseWriter, r *http.Request) error {
	var req SendRequest
	if err := s.decodeBody(w, r, maxSendBody, &req); err != nil {
		return err
	}
	v, err := s.impl.Send(r.Context(), req)
	if err != nil {
		return err
	}
	// Created, whether delivered or queued: the message is stored.
	s.writeJSON(w, r, http.StatusCreated, v)
	return nil
}

func (s *server) history(w http.ResponseWriter, r *http.Request) error {
	q, err := parseHistoryQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	v, err := s.impl.History(r.Context(), q)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, orEmpty(v))
	return nil
}

func (s *server) outbox(w http.ResponseWriter, r *http.Request) error {
	v, err := s.impl.Outbox(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, orEmpty(v))
	return nil
}

func (s *server) markRead(w http.ResponseWriter, r *http.Request) error {
	var req ReadRequest
	if err := s.decodeBody(w, r, maxReadBody, &req); err != nil {
		return err
	}
	if err := s.impl.MarkRead(r.Context(), req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) rooms(w http.ResponseWriter, r *http.Request) error {
	v, err := s.impl.Rooms(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, orEmpty(v))
	return nil
}

func (s *server) joinRoom(w http.ResponseWriter, r *http.Request) error {
	req, err := s.decodeRoomRequest(w, r)
	if err != nil {
		return err
	}
	v, err := s.impl.JoinRoom(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *server) leaveRoom(w http.ResponseWriter, r *http.Request) error {
	req, err := s.decodeRoomRequest(w, r)
	if err != nil {
		return err
	}
	v, err := s.impl.LeaveRoom(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

// decodeRoomRequest reads the body of a join or a leave. A body without
// a room is refused here, as a query without one is; whether the name is
// a room name is the implementation's to say (it says so to in-process
// callers too).
func (s *server) decodeRoomRequest(w http.ResponseWriter, r *http.Request) (RoomRequest, error) {
	var req RoomRequest
	if err := s.decodeBody(w, r, maxRoomBody, &req); err != nil {
		return RoomRequest{}, err
	}
	if req.Room == "" {
		return RoomRequest{}, Errorf(CodeInvalid, `request body: "room" is required, e.g. {"room":"#general"}`)
	}
	return req, nil
}

func (s *server) setRetention(w http.ResponseWriter, r *http.Request) error {
	var req RetentionRequest
	if err := s.decodeBody(w, r, maxRoomBody, &req); err != nil {
		return err
	}
	if req.Room == "" {
		return Errorf(CodeInvalid, `request body: "room" is required, e.g. {"room":"#ops","retention":2592000}`)
	}
	v, err := s.impl.SetRetention(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *server) roomMembers(w http.ResponseWriter, r *http.Request) error {
	room, err := parseMembersQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	v, err := s.impl.RoomMembers(r.Context(), room)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, orEmpty(v))
	return nil
}

// parseMembersQuery reads GET /v1/rooms/members's one parameter, which
// is required.
func parseMembersQuery(raw string) (string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "", Errorf(CodeInvalid, "query string: "+err.Error())
	}
	room := vals.Get("room")
	if room == "" {
		return "", Errorf(CodeInvalid, "query parameter \"room\" is required: ?room=%23general ('#' written as %23)")
	}
	return room, nil
}

func (s *server) doctor(w http.ResponseWriter, r *http.Request) error {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return Errorf(CodeInvalid, "query string: "+err.Error())
	}
	v, err := s.impl.Doctor(r.Context(), DoctorQuery{Peer: vals.Get("peer")})
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

// events streams impl.Events as newline-delimited JSON. The status line
// waits for the first event (the snapshot), so a subscription that fails
// at once is an ordinary error reply.
func (s *server) events(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rc := http.NewResponseController(w)
	started := false
	sent := 0
	err := s.impl.Events(r.Context(), func(ev Event) error {
		line := s.encodeEvent(ev)
		if !started {
			h := w.Header()
			h.Set("Content-Type", "application/x-ndjson")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.EventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("event stream: %w", err)
		}
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		if err := rc.Flush(); err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		sent++
		return nil
	})
	if !started {
		return err // nil if the client left before the snapshot
	}
	_ = rc.SetWriteDeadline(time.Time{})
	switch {
	case err == nil:
		s.log.Debug("api: event stream ended", "events", sent)
	case errors.Is(err, ErrResync):
		s.log.Info("api: event subscriber fell behind; stream ended after resync", "events", sent)
	default:
		s.log.Debug("api: event stream ended", "events", sent, "err", err)
	}
	return nil
}

// encodeEvent is ev as one line of the stream. Its type field is set from
// its Go type, and a snapshot's peers and rooms are lists even when there
// are none.
// An event that cannot be sent becomes a warning with its seq.
func (s *server) encodeEvent(ev Event) []byte {
	ev = ev.WithSeq(ev.EventSeq())
	if snap, ok := ev.(Snapshot); ok && (snap.Peers == nil || snap.Rooms == nil) {
		snap.Peers, snap.Rooms = orEmpty(snap.Peers), orEmpty(snap.Rooms)
		ev = snap
	}
	b, err := json.Marshal(ev)
	if err == nil && len(b) > MaxEventLine {
		err = fmt.Errorf("%d bytes, the limit is %d", len(b), MaxEventLine)
	}
	if err != nil {
		s.log.Warn("api: event not sent", "type", ev.EventType(), "seq", ev.EventSeq(), "err", err)
		b, _ = json.Marshal(Warning{Type: TypeWarning, Seq: ev.EventSeq(),
			Text: fmt.Sprintf("a %s event could not be sent: %v", ev.EventType(), err)})
	}
	return append(b, '\n')
}

// decodeBody reads r's body, at most limit bytes, into v: exactly one JSON
// object, with no field v does not have.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	defer rc.SetReadDeadline(time.Time{})
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Errorf(CodeInvalid, fmt.Sprintf("request body larger than %d bytes", limit))
		}
		return Errorf(CodeInvalid, "read request body: "+err.Error())
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes body, which must be exactly one JSON object with no
// field unknown to v, into v.
func decodeJSON(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return Errorf(CodeInvalid, "empty request body: want a JSON object")
	}
	if trimmed[0] != '{' {
		return Errorf(CodeInvalid, "request body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeInvalid, "request body: "+describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(CodeInvalid, "request body: data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("want %s, got a JSON %s", jsonKind(typ.Type), typ.Value)
		}
		return fmt.Sprintf("field %q: want %s, got a JSON %s", typ.Field, jsonKind(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: it ends too soon"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names what a Go type is in JSON, for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// checkParams refuses a query string that does not parse, names a
// parameter the route does not take, or repeats one.
func checkParams(r *http.Request, allowed []string) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return Errorf(CodeInvalid, "query string: "+err.Error())
	}
	for name, vs := range vals {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return Errorf(CodeInvalid, fmt.Sprintf("unknown query parameter %q: %s takes none", name, r.URL.Path))
			}
			return Errorf(CodeInvalid, fmt.Sprintf("unknown query parameter %q (known: %s)", name, strings.Join(allowed, ", ")))
		}
		if len(vs) > 1 {
			return Errorf(CodeInvalid, fmt.Sprintf("query parameter %q given %d times", name, len(vs)))
		}
	}
	return nil
}

// parseHistoryQuery reads GET /v1/history's parameters. An empty value is
// the same as none.
func parseHistoryQuery(raw string) (HistoryQuery, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return HistoryQuery{}, Errorf(CodeInvalid, "query string: "+err.Error())
	}
	q := HistoryQuery{Peer: vals.Get("peer"), Search: vals.Get("search"), Before: vals.Get("before")}
	if err := q.CheckBefore(); err != nil {
		return HistoryQuery{}, err
	}
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			return HistoryQuery{}, Errorf(CodeInvalid, fmt.Sprintf("limit %q: want a whole number from 1 to %d", v, MaxHistoryLimit))
		}
		q.Limit = n
	}
	if v := vals.Get("since"); v != "" {
		t, err := parseSince(v)
		if err != nil {
			return HistoryQuery{}, Errorf(CodeInvalid, fmt.Sprintf("since %q: want an RFC 3339 time such as 2024-05-01T12:00:00Z", v))
		}
		q.Since = t
	}
	if v := vals.Get("mark_read"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return HistoryQuery{}, Errorf(CodeInvalid, fmt.Sprintf("mark_read %q: want true or false", v))
		}
		q.MarkRead = b
	}
	return q, nil
}

// parseSince parses an RFC 3339 time. A '+' left unescaped in a query
// string arrives as a space; a space has no other meaning there, so it is
// read as the '+' it was.
func parseSince(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil && strings.Contains(v, " ") {
		t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
	}
	return t, err
}

// writeError replies with err as an *Error, with its code's status.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client hung up, and reads nothing, or the server shuts down
		// and ended the request: the node is closing.
		err = ErrClosed
	}
	e := wireError(err)
	s.writeErrorStatus(w, r, HTTPStatus(e.Code), e)
}

func (s *server) writeErrorStatus(w http.ResponseWriter, r *http.Request, status int, e *Error) {
	switch {
	case status >= 500 && r.Context().Err() == nil:
		s.log.Warn("api: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", e.Code, "err", e.Message)
	default:
		s.log.Debug("api: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", e.Code, "err", e.Message)
	}
	s.writeJSON(w, r, status, e)
}

// wireError is err as it is sent: an *Error with a code and a message.
// The message is err's whole text, wrapping included; a bare sentinel
// gets its code's words. ErrClosed, not an *Error, goes as offline with
// its own text, which Client turns back into ErrClosed.
func wireError(err error) *Error {
	var e *Error
	if !errors.As(err, &e) {
		if errors.Is(err, ErrClosed) {
			return &Error{Code: CodeOffline, Message: ErrClosed.Error()}
		}
		return AsError(err)
	}
	out := *e
	if out.Code == "" {
		out.Code = CodeFailed
	}
	if out.Message == "" {
		out.Message = strings.ReplaceAll(out.Code, "_", " ")
	} else {
		out.Message = err.Error()
	}
	return &out
}

func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Warn("api: encode reply", "method", r.Method, "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		b, _ = json.Marshal(&Error{Code: CodeFailed, Message: "encode reply: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// orEmpty makes a nil list an empty one, so it goes as [] and not null.
func orEmpty[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (s *server) contacts(w http.ResponseWriter, r *http.Request) error {
	v, err := s.impl.Contacts(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *server) trust(w http.ResponseWriter, r *http.Request) error {
	return s.trustCall(w, r, s.impl.Trust)
}

func (s *server) untrust(w http.ResponseWriter, r *http.Request) error {
	return s.trustCall(w, r, s.impl.Untrust)
}

// trustCall reads a trust or untrust body: an id is required, and whether
// it names a peer is the implementation's to say.
func (s *server) trustCall(w http.ResponseWriter, r *http.Request, call func(context.Context, TrustRequest) (Contact, error)) error {
	var req TrustRequest
	if err := s.decodeBody(w, r, maxRoomBody, &req); err != nil {
		return err
	}
	if req.ID == "" {
		return Errorf(CodeInvalid, `request body: "id" is required, e.g. {"id":"K2QF"}`)
	}
	v, err := call(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}
