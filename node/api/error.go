package api

import (
	"errors"
	"net/http"
	"strings"
)

// Error codes: stable, for scripts to act on. Each has its HTTP status.
const (
	CodeUnknownRecipient   = "unknown_recipient"   // 404: nobody by that name or id
	CodeAmbiguousRecipient = "ambiguous_recipient" // 409: a name several peers share; Matches lists them
	CodeOffline            = "offline"             // 503: the peer, or the node, cannot be reached now
	CodeInvalid            = "invalid"             // 400: a malformed or refused request
	CodeNotFound           = "not_found"           // 404: no such path or object
	CodeForbidden          = "forbidden"           // 403: another user's process
	CodeNotMember          = "not_member"          // 409: sending to, or asking of, a room this node is not in
	CodeUntrustedName      = "untrusted_name"      // 409: only peers that are not the pinned contact claim the name; Matches lists them
	CodeFailed             = "failed"              // 500: anything else (a full disk, a store error)
)

// Error is how every failure travels: JSON on the wire, a Go error in
// process. Message is for people; Code is for programs.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
	// Matches, for ambiguous_recipient, are the peers sharing the name;
	// Online, for unknown_recipient, who is online.
	Matches []Peer `json:"matches,omitempty"`
	Online  []Peer `json:"online,omitempty"`
	// To, when the recipient was resolved before the failure.
	To *PeerRef `json:"to,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Is matches an *Error against the sentinels by code, so
// errors.Is(err, api.ErrOffline) holds in process and over the socket.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is; they carry only a code.
var (
	ErrUnknownRecipient   = &Error{Code: CodeUnknownRecipient}
	ErrAmbiguousRecipient = &Error{Code: CodeAmbiguousRecipient}
	ErrOffline            = &Error{Code: CodeOffline}
	ErrInvalid            = &Error{Code: CodeInvalid}
	ErrNotFound           = &Error{Code: CodeNotFound}
	ErrForbidden          = &Error{Code: CodeForbidden}
	ErrNotMember          = &Error{Code: CodeNotMember}
	ErrUntrustedName      = &Error{Code: CodeUntrustedName}
	ErrFailed             = &Error{Code: CodeFailed}
)

// Errors that are not replies.
var (
	// ErrNoNode: no node runs on the data directory (the socket does not
	// answer).
	ErrNoNode = errors.New("no node running on this data directory")
	// ErrClosed: the node has stopped, or stops while the call waits.
	ErrClosed = errors.New("node closed")
	// ErrResync: an event subscriber fell behind; see API.Events.
	ErrResync = errors.New("event subscriber fell behind; subscribe again")
	// ErrNotRunning: the call needs a running node (Events without one).
	ErrNotRunning = errors.New("no node is running: start one with `lanchat run`")
)

// Errorf makes an *Error with code; the message is lowercase, like every
// Go error.
func Errorf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// HTTPStatus is the status a code is sent with.
func HTTPStatus(code string) int {
	switch code {
	case CodeUnknownRecipient, CodeNotFound:
		return http.StatusNotFound
	case CodeAmbiguousRecipient, CodeNotMember, CodeUntrustedName:
		return http.StatusConflict
	case CodeOffline:
		return http.StatusServiceUnavailable
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// AsError returns err as an *Error: itself if it is (or wraps) one,
// otherwise failed with err's text.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeFailed, Message: strings.TrimSpace(err.Error())}
}
