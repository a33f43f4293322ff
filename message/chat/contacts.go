package chat

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"lanchat/internal/fsutil"
	"lanchat/mesh"
)

// contact is someone this data directory has seen: enough to address a
// message to them while they are offline, after a restart, and to know
// whether a name belongs to them.
type contact struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
	// Trusted: this id is pinned for its name (trust on first use, or
	// lanchat trust). A pinned contact is never evicted, and a name that
	// looks like its name is suspect on any other id.
	Trusted bool `json:"trusted,omitempty"`
	// ByUser: the person pinned it (lanchat trust), rather than the
	// first verified sighting.
	ByUser bool `json:"by_user,omitempty"`
	// Untrusted: the person unpinned it (lanchat untrust); a later
	// sighting does not pin it again.
	Untrusted bool `json:"untrusted,omitempty"`

	skel string // nameKey(Name), not stored
}

const (
	// maxContacts bounds the book. Pinned contacts are kept whatever
	// happens; the rest — peers seen but never verified, senders never
	// seen on the LAN — are strangers, and the oldest stranger makes room
	// for a new one, so a flood of fresh keys evicts only strangers.
	maxContacts = 10000
	// maxStrangers bounds the strangers among them.
	maxStrangers = 2000
	// maxAutoPinned bounds how many contacts a first sighting pins, so
	// that thousands of fresh keys with fresh names cannot fill the book
	// with pins. Past it, new peers stay strangers until a person trusts
	// them.
	maxAutoPinned = 5000
	maxContactsB  = 4 << 20
)

// contacts is the address book, kept in the data directory. Presence
// events and received messages update it; it is written at most every
// few seconds and on close, atomically (write, then rename).
type contacts struct {
	path string
	// saveMu orders saves: each writes the book as it was when it took
	// it, so without it an older snapshot (the background saver's) could
	// land after a newer one (lanchat trust's) and undo a decision.
	saveMu sync.Mutex

	mu        sync.Mutex // guards the fields below
	byID      map[string]*contact
	bySkel    map[string][]string // nameKey of a pinned contact's name → the pinned ids
	strangers int                 // contacts not Trusted
	autoPins  int                 // contacts Trusted by a sighting, not by the user
	dirty     bool

	// urgent is signalled when someone new is seen, renamed or pinned:
	// that must reach the disk at once, or a crash soon after would
	// leave them unaddressable by name. A mere last-seen update can wait.
	urgent chan struct{}
	// changed is signalled whenever the book becomes dirty; buffered 1.
	// The saver sleeps on it rather than wake every few seconds to find
	// nothing to write.
	changed chan struct{}
}

// loadContacts reads the book at path; "" keeps it in memory only.
func loadContacts(path string) (*contacts, error) {
	c := &contacts{path: path, byID: map[string]*contact{}, bySkel: map[string][]string{}, urgent: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	if path == "" {
		return c, nil
	}
	f, err := fsutil.OpenNoFollow(c.path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxContactsB {
		return c, errors.New("contacts.json is too large; ignoring it")
	}
	var list []contact
	if err := json.NewDecoder(io.LimitReader(f, maxContactsB)).Decode(&list); err != nil {
		return c, err
	}
	for _, k := range list {
		if len(c.byID) >= maxContacts {
			break
		}
		if !mesh.ValidID(k.ID) || mesh.ValidName(k.Name) != nil || c.byID[k.ID] != nil {
			continue
		}
		if !k.Trusted && c.strangers >= maxStrangers {
			continue
		}
		k.ByUser = k.ByUser && k.Trusted
		c.add(&k)
	}
	return c, nil
}

// add puts k in the book and its indexes. c.mu is held.
func (c *contacts) add(k *contact) {
	k.skel = nameKey(k.Name)
	c.byID[k.ID] = k
	if k.Trusted {
		c.bySkel[k.skel] = append(c.bySkel[k.skel], k.ID)
		if !k.ByUser {
			c.autoPins++
		}
	} else {
		c.strangers++
	}
}

// remove takes k out of the book and its indexes. c.mu is held.
func (c *contacts) remove(k *contact) {
	delete(c.byID, k.ID)
	if k.Trusted {
		c.unindex(k)
		if !k.ByUser {
			c.autoPins--
		}
	} else {
		c.strangers--
	}
}

func (c *contacts) unindex(k *contact) {
	ids := c.bySkel[k.skel]
	for i, id := range ids {
		if id == k.ID {
			ids = append(ids[:i:i], ids[i+1:]...)
			break
		}
	}
	if len(ids) == 0 {
		delete(c.bySkel, k.skel)
	} else {
		c.bySkel[k.skel] = ids
	}
}

// markDirty notes that the book must be written. c.mu is held.
func (c *contacts) markDirty() {
	c.dirty = true
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// saw records a peer's name as of now, as claimed by a message it signed
// or by presence not yet proven: a newcomer joins the strangers.
func (c *contacts) saw(id, name string) { c.see(id, name, false) }

// sawVerified records a peer whose key a TLS handshake proved: the first
// id proven for a name is pinned for it (trust on first use), unless a
// pinned contact already has that name or one confusable with it.
func (c *contacts) sawVerified(id, name string) { c.see(id, name, true) }

func (c *contacts) see(id, name string, verified bool) {
	if !mesh.ValidID(id) || mesh.ValidName(name) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Second)
	k := c.byID[id]
	if k != nil && k.Name == name && now.Sub(k.LastSeen) < time.Minute && (k.Trusted || !verified || !c.pinnable(k.ID, k.skel, k.Untrusted)) {
		return
	}
	changed := k == nil || k.Name != name
	if k == nil {
		if len(c.byID) >= maxContacts || c.strangers >= maxStrangers {
			if !c.evictStranger() {
				return // every place is a pinned contact's
			}
		}
		k = &contact{ID: id, Name: name}
		c.add(k)
	}
	k.LastSeen = now
	if k.Name != name {
		if k.Trusted {
			c.unindex(k)
		}
		k.Name, k.skel = name, nameKey(name)
		if k.Trusted {
			c.bySkel[k.skel] = append(c.bySkel[k.skel], k.ID)
		}
	}
	if verified && !k.Trusted && c.pinnable(k.ID, k.skel, k.Untrusted) {
		if c.autoPins < maxAutoPinned {
			c.pin(k, false)
			changed = true
		}
	}
	c.markDirty()
	if changed {
		select {
		case c.urgent <- struct{}{}:
		default:
		}
	}
}

// pinnable reports whether a sighting may pin id under the name whose key
// is skel: no other pinned contact holds that name. c.mu is held.
func (c *contacts) pinnable(id, skel string, untrusted bool) bool {
	if untrusted {
		return false
	}
	for _, other := range c.bySkel[skel] {
		if other != id {
			return false
		}
	}
	return true
}

// pin makes k trusted. c.mu is held.
func (c *contacts) pin(k *contact, byUser bool) {
	if k.Trusted {
		if byUser && !k.ByUser {
			k.ByUser = true
			c.autoPins--
		}
		return
	}
	c.strangers--
	k.Trusted, k.ByUser, k.Untrusted = true, byUser, false
	if !byUser {
		c.autoPins++
	}
	c.bySkel[k.skel] = append(c.bySkel[k.skel], k.ID)
}

// trust pins id (lanchat trust). name is used when the book does not
// know the id yet. It reports the contact as now stored.
func (c *contacts) trust(id, name string) (contact, error) {
	if !mesh.ValidID(id) {
		return contact{}, errors.New("not a peer id")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.byID[id]
	if k == nil {
		if mesh.ValidName(name) != nil {
			name = mesh.ShortID(id)
		}
		if len(c.byID) >= maxContacts && !c.evictStranger() {
			return contact{}, errors.New("the contact book is full of trusted contacts; untrust some first")
		}
		k = &contact{ID: id, Name: name, LastSeen: time.Now().UTC().Truncate(time.Second)}
		c.add(k)
	}
	c.pin(k, true)
	c.markDirty()
	select {
	case c.urgent <- struct{}{}:
	default:
	}
	return *k, nil
}

// untrust unpins id (lanchat untrust) and keeps a sighting from pinning
// it again. It reports whether the book knew the id.
func (c *contacts) untrust(id string) (contact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.byID[id]
	if k == nil {
		return contact{}, false
	}
	if k.Trusted {
		c.unindex(k)
		if !k.ByUser {
			c.autoPins--
		}
		c.strangers++
	}
	k.Trusted, k.ByUser, k.Untrusted = false, false, true
	c.markDirty()
	select {
	case c.urgent <- struct{}{}:
	default:
	}
	return *k, true
}

// evictStranger removes the stranger seen longest ago and reports whether
// there was one. c.mu is held. It is a walk of the book, paid only when a
// newcomer finds the book full.
func (c *contacts) evictStranger() bool {
	var oldest *contact
	for _, k := range c.byID {
		if !k.Trusted && (oldest == nil || k.LastSeen.Before(oldest.LastSeen)) {
			oldest = k
		}
	}
	if oldest == nil {
		return false
	}
	c.remove(oldest)
	return true
}

func (c *contacts) name(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byID[id]
	if !ok {
		return "", false
	}
	return k.Name, true
}

func (c *contacts) get(id string) (contact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byID[id]
	if !ok {
		return contact{}, false
	}
	return *k, true
}

func (c *contacts) list() []contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]contact, 0, len(c.byID))
	for _, k := range c.byID {
		out = append(out, *k)
	}
	return out
}

// pinnedFor returns the pinned contacts whose names look like name (the
// same nameKey), id excluded.
func (c *contacts) pinnedFor(skel, id string) []contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []contact
	for _, other := range c.bySkel[skel] {
		if other != id {
			out = append(out, *c.byID[other])
		}
	}
	return out
}

// save writes the file if anything changed.
func (c *contacts) save() error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	if !c.dirty || c.path == "" {
		c.mu.Unlock()
		return nil
	}
	list := make([]contact, 0, len(c.byID))
	for _, k := range c.byID {
		list = append(list, *k)
	}
	c.dirty = false
	c.mu.Unlock()
	b, err := json.Marshal(list)
	if err == nil {
		err = fsutil.WriteFileAtomic(c.path, b)
	}
	if err != nil {
		c.mu.Lock()
		c.dirty = true // written next time
		c.mu.Unlock()
	}
	return err
}
