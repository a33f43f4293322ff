package node

import (
	"context"
	"errors"
	"strings"

	"lanchat/mesh"
	"lanchat/message/chat"
	"lanchat/node/api"
)

// Contacts lists the contact book.
func (n *Node) Contacts(ctx context.Context) ([]api.Contact, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	return apiContacts(n.chat.Contacts()), nil
}

// Trust pins a peer for its name.
func (n *Node) Trust(ctx context.Context, req api.TrustRequest) (api.Contact, error) {
	if n.closed() {
		return api.Contact{}, ErrClosed
	}
	return trustCall(n.chat.Trust, req)
}

// Untrust unpins a peer.
func (n *Node) Untrust(ctx context.Context, req api.TrustRequest) (api.Contact, error) {
	if n.closed() {
		return api.Contact{}, ErrClosed
	}
	return trustCall(n.chat.Untrust, req)
}

// The one-shot: the book in the data directory.

func (o *OneShot) Contacts(ctx context.Context) ([]api.Contact, error) {
	var out []api.Contact
	err := o.offline(func(svc *chat.Service) error {
		out = apiContacts(svc.Contacts())
		return nil
	})
	return out, err
}

func (o *OneShot) Trust(ctx context.Context, req api.TrustRequest) (api.Contact, error) {
	var out api.Contact
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = trustCall(svc.Trust, req)
		return err
	})
	return out, err
}

func (o *OneShot) Untrust(ctx context.Context, req api.TrustRequest) (api.Contact, error) {
	var out api.Contact
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = trustCall(svc.Untrust, req)
		return err
	})
	return out, err
}

func trustCall(f func(string) (chat.Contact, error), req api.TrustRequest) (api.Contact, error) {
	c, err := f(strings.TrimSpace(req.ID))
	if err != nil {
		if errors.Is(err, chat.ErrNeedID) {
			return api.Contact{}, api.Errorf(api.CodeInvalid, err.Error())
		}
		return api.Contact{}, apiError(err)
	}
	return apiContact(c), nil
}

func apiContact(c chat.Contact) api.Contact {
	return api.Contact{
		ID: c.ID, Name: c.Name, Fingerprint: c.Fingerprint, LastSeen: c.LastSeen,
		Trusted: c.Trusted, ByUser: c.ByUser, Untrusted: c.Untrusted, Warning: c.Warning,
	}
}

func apiContacts(cs []chat.Contact) []api.Contact {
	out := make([]api.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, apiContact(c))
	}
	return out
}

// withTrust adds what svc makes of each peer's claim to its name.
func withTrust(svc *chat.Service, ps []api.Peer) []api.Peer {
	for i := range ps {
		t := svc.TrustOf(ps[i].ID, ps[i].Name)
		ps[i].Trusted, ps[i].Warning = t.Trusted, t.Warning
	}
	return ps
}

// fingerprint is the id's fingerprint, or "" for an id that is not one.
func fingerprint(id string) string {
	fp, _ := mesh.Fingerprint(id)
	return fp
}
