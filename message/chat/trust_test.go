package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lanchat/internal/testutil"
	"lanchat/mesh"
	"lanchat/message"
)

func verified(p party, name string) mesh.Peer {
	return mesh.Peer{ID: p.id, Name: name, State: mesh.Available, Verified: true}
}

// The first id proven under a name is pinned; a second id claiming it, or
// a look-alike of it, is flagged wherever it is shown, and "bob" goes to
// the pinned bob even while the impostor is online and the real one is
// not.
func TestFirstVerifiedIDIsPinnedAndImpostorsAreFlagged(t *testing.T) {
	f := newFixture(t, Config{})
	bob, fake, homoglyph := newParty(t, "bob"), newParty(t, "bob"), newParty(t, "bоb") // Cyrillic о
	f.svc.Saw(verified(bob, "bob"))
	f.svc.Saw(verified(fake, "bob"))
	f.svc.Saw(verified(homoglyph, "bоb"))
	f.pres.set(fake.id, "bob", mesh.Available)
	f.pres.set(homoglyph.id, "bоb", mesh.Available)

	if tr := f.svc.TrustOf(bob.id, "bob"); !tr.Trusted || tr.Warning != "" {
		t.Fatalf("the first bob: %+v, want trusted", tr)
	}
	for _, p := range []party{fake, homoglyph} {
		tr := f.svc.TrustOf(p.id, p.name)
		if tr.Trusted || tr.Warning == "" {
			t.Errorf("%q (%s): %+v, want a warning", p.name, mesh.ShortID(p.id), tr)
		}
	}
	got, err := f.svc.Resolve("bob")
	if err != nil || got.ID != bob.id {
		t.Fatalf(`"bob" resolved to %v, %v; want the pinned bob (offline) over the impostor online`, got.ID, err)
	}
	// The look-alike is never chosen by its name alone.
	_, err = f.svc.Resolve("bоb")
	if !errors.Is(err, ErrUntrustedName) {
		t.Fatalf(`the look-alike's own name resolved: %v; want ErrUntrustedName`, err)
	}
	// Its id still works: a person who means it can say so.
	if got, err := f.svc.Resolve(homoglyph.id); err != nil || got.ID != homoglyph.id {
		t.Fatalf("by id: %v, %v", got.ID, err)
	}

	// A message from the impostor carries the warning to the UI.
	errs := f.svc.DeliverBatch(context.Background(), []*message.Envelope{sealFrom(t, fake, f.me.id, message.KindText, "it's me, bob")})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	evs := f.ev.messages()
	if len(evs) != 1 || evs[0].From.Trust.Warning == "" {
		t.Fatalf("message event from the impostor: %+v", evs)
	}
	hist, err := f.svc.History(context.Background(), Query{Peer: fake.id})
	if err != nil || len(hist) != 1 || hist[0].From.Trust.Warning == "" {
		t.Fatalf("history of the impostor: %+v, %v", hist, err)
	}
	// Someone using our own name is flagged too.
	me2 := newParty(t, "alice")
	if tr := f.svc.TrustOf(me2.id, "Alice"); tr.Warning == "" {
		t.Errorf("a stranger named like us: %+v", tr)
	}
}

// lanchat trust pins an id by id (never by name) and survives a restart;
// untrust unpins it, and a later sighting does not pin it again.
func TestTrustAndUntrustByID(t *testing.T) {
	f := newFixture(t, Config{})
	bob, newBob := newParty(t, "bob"), newParty(t, "bob")
	f.svc.Saw(verified(bob, "bob"))
	f.svc.Saw(verified(newBob, "bob")) // bob reinstalled: a new key

	if _, err := f.svc.Trust("bob"); !errors.Is(err, ErrNeedID) {
		t.Fatalf("trust by name: %v, want ErrNeedID", err)
	}
	c, err := f.svc.Trust(newBob.id[:6])
	if err != nil || !c.Trusted || !c.ByUser || c.ID != newBob.id || len(c.Fingerprint) != 35 {
		t.Fatalf("trust the new key: %+v, %v", c, err)
	}
	// Two trusted ids under one name: the name is ambiguous, not a guess.
	if _, err := f.svc.Resolve("bob"); !errors.Is(err, ErrAmbiguousRecipient) {
		t.Fatalf(`"bob" with two trusted: %v, want ambiguous`, err)
	}
	if _, err := f.svc.Untrust(bob.id); err != nil {
		t.Fatal(err)
	}
	f.svc.Saw(verified(bob, "bob")) // the old key shows up again
	if got, err := f.svc.Resolve("bob"); err != nil || got.ID != newBob.id {
		t.Fatalf(`"bob" after untrusting the old key: %v, %v; want the new one`, got.ID, err)
	}
	if tr := f.svc.TrustOf(bob.id, "bob"); tr.Trusted || tr.Warning == "" {
		t.Fatalf("the untrusted old key: %+v, want a warning", tr)
	}

	// The book is on disk as soon as trust returns.
	cs, err := loadContacts(f.dir + "/contacts.json")
	if err != nil {
		t.Fatal(err)
	}
	if k := cs.byID[newBob.id]; k == nil || !k.Trusted || !k.ByUser {
		t.Fatalf("after a restart the trusted key is %+v", k)
	}
	if k := cs.byID[bob.id]; k == nil || k.Trusted || !k.Untrusted {
		t.Fatalf("after a restart the untrusted key is %+v", k)
	}
}

// A flood of messages from fresh keys fills only the strangers' part of
// the book: pinned contacts stay, keep their names, and the book stays
// bounded.
func TestContactFloodCannotEvictPinned(t *testing.T) {
	f := newFixture(t, Config{})
	carol := newParty(t, "carol")
	f.svc.Saw(verified(carol, "carol"))
	const flood = maxStrangers + 500
	for i := range flood {
		id := mesh.IDFromPublicKey(fmt.Appendf(nil, "%032d", i))
		f.svc.contacts.saw(id, "carol") // each claims the name, as a message would
	}
	if n := len(f.svc.contacts.list()); n > maxStrangers+1 {
		t.Fatalf("book has %d entries after a flood of %d, want at most %d", n, flood, maxStrangers+1)
	}
	got, err := f.svc.Resolve("carol")
	if err != nil || got.ID != carol.id {
		t.Fatalf(`"carol" after the flood: %v, %v; want the pinned carol`, got.ID, err)
	}
}

// Names that draw nothing, or hide a blank filler, are refused.
func TestBlankNamesAreRefused(t *testing.T) {
	for _, name := range []string{"\u3164", "\u2800\u2800", "\u115F", "bob\u3164", " \u3000 ", "\u0301\u0301"} {
		if err := mesh.ValidName(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	for _, name := range []string{"bob", "Zoë", "李雷", "o'neil", "R2-D2", "🦊"} {
		if err := mesh.ValidName(name); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
}

func TestNameKeyJoinsLookAlikes(t *testing.T) {
	same := [][2]string{{"bob", "BOB"}, {"bob", "bоb"}, {"Ian", "lan"}, {"paypal", "pаypаl"}, {"a  b", "a b"}}
	for _, p := range same {
		if nameKey(p[0]) != nameKey(p[1]) {
			t.Errorf("%q and %q do not share a key (%q, %q)", p[0], p[1], nameKey(p[0]), nameKey(p[1]))
		}
	}
	for _, p := range [][2]string{{"bob", "rob"}, {"ann", "anna"}} {
		if nameKey(p[0]) == nameKey(p[1]) {
			t.Errorf("%q and %q share a key", p[0], p[1])
		}
	}
}

// TestLastSeenUpdateReachesTheDisk: the contacts saver sleeps until the
// book changes; a change that is not urgent (a known peer seen again, a
// minute or more later) must still wake it and be written within a few
// seconds.
func TestLastSeenUpdateReachesTheDisk(t *testing.T) {
	f := newFixture(t, Config{})
	bob := newParty(t, "bob")
	f.svc.Saw(verified(bob, "bob")) // new: written at once
	path := filepath.Join(f.dir, "contacts.json")
	lastSeen := func() time.Time {
		b, err := os.ReadFile(path)
		if err != nil {
			return time.Time{}
		}
		var list []contact
		if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
			return time.Time{}
		}
		return list[0].LastSeen
	}
	testutil.WaitFor(t, "bob in the book on disk", 5*time.Second, func() bool { return !lastSeen().IsZero() })
	// Bob was last seen an hour ago, on disk too; whatever the saver had
	// pending is done after its delay.
	c := f.svc.contacts
	c.mu.Lock()
	old := c.byID[bob.id].LastSeen.Add(-time.Hour)
	c.byID[bob.id].LastSeen, c.dirty = old, true
	c.mu.Unlock()
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(contactsSaveDelay + time.Second)
	if got := lastSeen(); !got.Equal(old) {
		t.Fatalf("last seen on disk %v, want %v", got, old)
	}
	before := time.Now().UTC().Truncate(time.Second)
	f.svc.Saw(verified(bob, "bob"))
	testutil.WaitFor(t, "the new last-seen on disk", contactsSaveDelay+5*time.Second, func() bool {
		return !lastSeen().Before(before)
	})
}
