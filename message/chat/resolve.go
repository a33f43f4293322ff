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
	if errors.Is(e.Err, ErrUntrustedName) {
		fmt.Fprintf(&b, "%q is claimed only by peers that are not the one you trust; use an id, or `lanchat trust <id>` if it is really them:", e.Query)
		for _, p := range e.Matches {
			fmt.Fprintf(&b, "\n  %s  %s (%s)", p.ID, p.Name, p.State)
		}
		return b.String()
	}
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
func Resolve(q string, peers []mesh.Peer) (mesh.Peer, error) { return resolve(q, peers, nil) }

// resolve is Resolve where trust, when not nil, says what to make of each
// peer's claim to its name: among the peers with the name, a pinned one
// is chosen over the rest, and one that carries a warning (it is not the
// pinned one, or looks like it) is never chosen by name.
func resolve(q string, peers []mesh.Peer, trust func(id, name string) Trust) (mesh.Peer, error) {
	uq := strings.ToUpper(q)
	for _, p := range peers {
		if p.ID == uq {
			return p, nil
		}
	}
	var named, pinned, clean []mesh.Peer
	for _, p := range peers {
		if !strings.EqualFold(p.Name, q) {
			continue
		}
		named = append(named, p)
		if trust == nil {
			continue
		}
		switch t := trust(p.ID, p.Name); {
		case t.Trusted:
			pinned = append(pinned, p)
		case t.Warning == "":
			clean = append(clean, p)
		}
	}
	if trust == nil {
		clean = named
	}
	for _, set := range [][]mesh.Peer{pinned, clean} {
		switch len(set) {
		case 0:
			continue
		case 1:
			return set[0], nil
		}
		return mesh.Peer{}, &RecipientError{Query: q, Err: ErrAmbiguousRecipient, Matches: set}
	}
	if len(named) > 0 {
		return mesh.Peer{}, &RecipientError{Query: q, Err: ErrUntrustedName, Matches: named}
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
