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
// message to them while they are offline, after a restart.
type contact struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
}

const (
	maxContacts  = 10000
	maxContactsB = 4 << 20
)

// contacts is the address book, kept in the data directory. Presence
// events and received messages update it; it is written at most every
// few seconds and on close, atomically (write, then rename).
type contacts struct {
	path string

	mu    sync.Mutex // guards the fields below
	byID  map[string]contact
	dirty bool

	// urgent is signalled when someone new is seen or renamed: that must
	// reach the disk at once, or a crash soon after would leave them
	// unaddressable by name. A mere last-seen update can wait.
	urgent chan struct{}
}

// loadContacts reads the book at path; "" keeps it in memory only.
func loadContacts(path string) (*contacts, error) {
	c := &contacts{path: path, byID: map[string]contact{}, urgent: make(chan struct{}, 1)}
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
		if mesh.ValidID(k.ID) && mesh.ValidName(k.Name) == nil {
			c.byID[k.ID] = k
		}
	}
	return c, nil
}

// saw records a peer's name as of now.
func (c *contacts) saw(id, name string) {
	if !mesh.ValidID(id) || mesh.ValidName(name) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.byID[id]
	now := time.Now().UTC().Truncate(time.Second)
	if ok && old.Name == name && now.Sub(old.LastSeen) < time.Minute {
		return
	}
	if !ok && len(c.byID) >= maxContacts {
		c.evictOldest()
	}
	c.byID[id] = contact{ID: id, Name: name, LastSeen: now}
	c.dirty = true
	if !ok || old.Name != name {
		select {
		case c.urgent <- struct{}{}:
		default:
		}
	}
}

func (c *contacts) evictOldest() {
	var oldest string
	var t time.Time
	for id, k := range c.byID {
		if oldest == "" || k.LastSeen.Before(t) {
			oldest, t = id, k.LastSeen
		}
	}
	delete(c.byID, oldest)
}

func (c *contacts) name(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byID[id]
	return k.Name, ok
}

func (c *contacts) list() []contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]contact, 0, len(c.byID))
	for _, k := range c.byID {
		out = append(out, k)
	}
	return out
}

// save writes the file if anything changed.
func (c *contacts) save() error {
	c.mu.Lock()
	if !c.dirty || c.path == "" {
		c.mu.Unlock()
		return nil
	}
	list := make([]contact, 0, len(c.byID))
	for _, k := range c.byID {
		list = append(list, k)
	}
	c.dirty = false
	c.mu.Unlock()
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(c.path, b)
}
