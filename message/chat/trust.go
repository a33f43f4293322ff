package chat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"

	"lanchat/mesh"
)

// Trust on first use. Names are claims: any key can call itself "bob".
// So the first id a TLS handshake proves under a name is pinned for it,
// and from then on:
//
//   - another id claiming that name, or one that looks like it (Unicode
//     TR39 confusables: "bоb" with a Cyrillic о, "rn" for "m"), carries
//     a warning everywhere it is shown;
//   - a name resolves to its pinned contact, and never to a suspect by
//     name alone: the person must use its id, or run lanchat trust;
//   - pinned contacts are never evicted from the book; strangers — peers
//     seen but not proven, senders never seen on the LAN — are evicted
//     oldest first and cannot push a pinned contact out.

// Trust is what this data directory knows about an id's claim to a name.
type Trust struct {
	// Trusted: the id is pinned (trust on first use, or lanchat trust).
	Trusted bool
	// Warning is set when the id is not pinned and its name is a pinned
	// contact's, or looks like one, or like ours: a person must be told
	// before they believe it.
	Warning string
}

// ErrUntrustedName: a name that only suspects claim (see Trust.Warning).
var ErrUntrustedName = errors.New("only peers that are not the one you trust have that name")

// nameKey is what two names that look alike to a person share: the TR39
// skeleton, taken before and after case folding (so "Ian" and "lan", and
// "BOB" and "bob", share one), with runs of spaces made one.
func nameKey(name string) string {
	k := confusables.Skeleton(norm.NFKC.String(name))
	k = confusables.Skeleton(strings.ToLower(k))
	return strings.Join(strings.Fields(k), " ")
}

// TrustOf says how far id's claim to name can be believed.
func (s *Service) TrustOf(id, name string) Trust {
	if id == s.cfg.Self {
		return Trust{Trusted: true}
	}
	if k, ok := s.contacts.get(id); ok && k.Trusted {
		return Trust{Trusted: true}
	}
	key := nameKey(name)
	if pins := s.contacts.pinnedFor(key, id); len(pins) > 0 {
		p := pins[0]
		return Trust{Warning: fmt.Sprintf("not the %s you trust (%s)", p.Name, mesh.ShortID(p.ID))}
	}
	if self := s.cfg.Name(); self != "" && key == nameKey(self) {
		return Trust{Warning: "uses your name"}
	}
	return Trust{}
}

// ref names a peer as a message or presence claims, with what this node
// makes of the claim.
func (s *Service) ref(id, name string) PeerRef {
	return PeerRef{ID: id, Name: name, Trust: s.TrustOf(id, name)}
}

// SawVerified records a peer whose key a TLS handshake proved, under the
// name it gives: the first id proven for a name is pinned for it. A pin
// on first use leaves the peer's storage quota as it was (quota.go).
func (s *Service) SawVerified(id, name string) { s.contacts.sawVerified(id, name) }

// trustedByUser reports whether the person trusted id (lanchat trust),
// as opposed to a pin on first use; this node itself counts.
func (s *Service) trustedByUser(id string) bool {
	if id == s.cfg.Self {
		return true
	}
	k, ok := s.contacts.get(id)
	return ok && k.Trusted && k.ByUser
}

// Contact is an entry of the contact book, for lanchat contacts.
type Contact struct {
	ID, Name    string
	Fingerprint string
	LastSeen    time.Time
	Trusted     bool
	ByUser      bool // pinned by lanchat trust rather than on first use
	Untrusted   bool // unpinned by lanchat untrust
	Warning     string
}

// Contacts lists the book: pinned contacts first, then by name.
func (s *Service) Contacts() []Contact {
	list := s.contacts.list()
	out := make([]Contact, 0, len(list))
	for _, k := range list {
		out = append(out, s.contactInfo(k))
	}
	slices.SortFunc(out, func(a, b Contact) int {
		if a.Trusted != b.Trusted {
			if a.Trusted {
				return -1
			}
			return 1
		}
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (s *Service) contactInfo(k contact) Contact {
	fp, _ := mesh.Fingerprint(k.ID)
	return Contact{
		ID: k.ID, Name: k.Name, Fingerprint: fp, LastSeen: k.LastSeen,
		Trusted: k.Trusted, ByUser: k.ByUser, Untrusted: k.Untrusted,
		Warning: s.TrustOf(k.ID, k.Name).Warning,
	}
}

// ErrNeedID: trust and untrust take an id, never a name — the name is
// what is in doubt.
var ErrNeedID = errors.New("give an id or an id prefix of at least 4 characters, not a name")

// Trust pins the peer q names (a whole id or an unambiguous id prefix of
// at least four characters, among the peers and contacts known).
func (s *Service) Trust(q string) (Contact, error) {
	p, err := s.resolveID(q)
	if err != nil {
		return Contact{}, err
	}
	if !s.quota.settled(s.ctx) {
		return Contact{}, ErrClosed
	}
	was := s.trustedByUser(p.ID)
	k, err := s.contacts.trust(p.ID, p.Name)
	if err != nil {
		return Contact{}, err
	}
	s.quota.retrusted(s.ctx, p.ID, was)
	// A person's decision is on disk before it is confirmed.
	if err := s.contacts.save(); err != nil {
		return Contact{}, fmt.Errorf("save contacts: %w", err)
	}
	return s.contactInfo(k), nil
}

// Untrust unpins the peer q names (as for Trust); a later sighting does
// not pin it again.
func (s *Service) Untrust(q string) (Contact, error) {
	p, err := s.resolveID(q)
	if err != nil {
		return Contact{}, err
	}
	if !s.quota.settled(s.ctx) {
		return Contact{}, ErrClosed
	}
	was := s.trustedByUser(p.ID)
	k, ok := s.contacts.untrust(p.ID)
	if !ok {
		return Contact{}, &RecipientError{Query: q, Err: ErrUnknownRecipient}
	}
	s.quota.retrusted(s.ctx, p.ID, was)
	if err := s.contacts.save(); err != nil {
		return Contact{}, fmt.Errorf("save contacts: %w", err)
	}
	return s.contactInfo(k), nil
}

// resolveID finds a peer by id or id prefix only.
func (s *Service) resolveID(q string) (mesh.Peer, error) {
	q = strings.ToUpper(strings.TrimSpace(q))
	if len(q) < 4 || strings.Trim(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		return mesh.Peer{}, fmt.Errorf("%q: %w", q, ErrNeedID)
	}
	known := s.Known()
	var pre []mesh.Peer
	for _, p := range known {
		if p.ID == q {
			return p, nil
		}
		if strings.HasPrefix(p.ID, q) {
			pre = append(pre, p)
		}
	}
	switch {
	case len(pre) == 1:
		return pre[0], nil
	case len(pre) > 1:
		return mesh.Peer{}, &RecipientError{Query: q, Err: ErrAmbiguousRecipient, Matches: pre}
	case mesh.ValidID(q):
		return mesh.Peer{ID: q, Name: mesh.ShortID(q)}, nil // not met yet: pin it ahead
	}
	return mesh.Peer{}, &RecipientError{Query: q, Err: ErrUnknownRecipient}
}
