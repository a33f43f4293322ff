package chat

import (
	"errors"
	"fmt"
	"strings"

	"lanchat/mesh"
)

// Errors of recipient resolution; a *RecipientError wraps one of them.
var (
	ErrUnknownRecipient   = errors.New("no such peer")
	ErrAmbiguousRecipient = errors.New("more than one peer has that name")
)

// RecipientError says why a recipient could not be resolved and lists
// what a person needs to fix the command: the peers online, or the ids
// sharing the name.
type RecipientError struct {
	Query   string
	Err     error       // ErrUnknownRecipient or ErrAmbiguousRecipient
	Matches []mesh.Peer // for ambiguous: the peers sharing the name
	Online  []mesh.Peer // for unknown: who is online
}

func (e *RecipientError) Error() string {
	var b strings.Builder
	if errors.Is(e.Err, ErrAmbiguousRecipient) {
		fmt.Fprintf(&b, "%q names %d peers; use an id:", e.Query, len(e.Matches))
		for _, p := range e.Matches {
			fmt.Fprintf(&b, "\n  %s  %s (%s)", p.ID, p.Name, p.State)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "no peer named %q", e.Query)
	if len(e.Online) == 0 {
		b.WriteString("; nobody else is online")
		return b.String()
	}
	b.WriteString("; online now:")
	for _, p := range e.Online {
		fmt.Fprintf(&b, "\n  %-20s %s", p.Name, p.ID)
	}
	return b.String()
}

func (e *RecipientError) Unwrap() error { return e.Err }

// Resolve finds the peer a person means by q: a whole id, then an exact
// name (ignoring case), then an unambiguous id prefix of at least four
// characters. A name shared by several peers is an error listing their
// ids, never a guess: the message could reach the wrong person.
func Resolve(q string, peers []mesh.Peer) (mesh.Peer, error) {
	uq := strings.ToUpper(q)
	for _, p := range peers {
		if p.ID == uq {
			return p, nil
		}
	}
	var named []mesh.Peer
	for _, p := range peers {
		if strings.EqualFold(p.Name, q) {
			named = append(named, p)
		}
	}
	switch len(named) {
	case 1:
		return named[0], nil
	case 0:
	default:
		return mesh.Peer{}, &RecipientError{Query: q, Err: ErrAmbiguousRecipient, Matches: named}
	}
	if len(uq) >= 4 {
		var pre []mesh.Peer
		for _, p := range peers {
			if strings.HasPrefix(p.ID, uq) {
				pre = append(pre, p)
			}
		}
		if len(pre) == 1 {
			return pre[0], nil
		}
		if len(pre) > 1 {
			return mesh.Peer{}, &RecipientError{Query: q, Err: ErrAmbiguousRecipient, Matches: pre}
		}
	}
	var online []mesh.Peer
	for _, p := range peers {
		if p.Online() {
			online = append(online, p)
		}
	}
	return mesh.Peer{}, &RecipientError{Query: q, Err: ErrUnknownRecipient, Online: online}
}
