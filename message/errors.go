package message

import "errors"

// Errors callers act on. They are matched with errors.Is; the returned errors
// wrap them with detail.
var (
	// ErrPeerUnreachable means no stream to the peer could be opened, or the
	// stream broke (twice) or fell silent before the message was
	// acknowledged. The message may or may not have arrived; re-sending the
	// same sealed envelope later is safe, the receiver de-duplicates it.
	ErrPeerUnreachable = errors.New("peer unreachable")

	// ErrRejected means the receiver refused the message (its Deliver
	// failed, or the envelope did not pass its checks). The receiver's
	// reason follows in the error text.
	ErrRejected = errors.New("message rejected")

	// ErrTooLarge means a body, envelope or frame exceeds its limit
	// (MaxText, MaxEnvelope, MaxFrame). Send refuses an oversized body
	// before anything is sent.
	ErrTooLarge = errors.New("too large")

	// ErrBadSignature means an envelope's signature does not verify, or its
	// author id is not the id of the key that signed it.
	ErrBadSignature = errors.New("bad signature")

	// ErrMalformed means bytes that do not follow the wire format: a bad
	// magic, version, length, field or frame type.
	ErrMalformed = errors.New("malformed")

	// ErrClosed is returned by a Service after Close.
	ErrClosed = errors.New("message service closed")
)
