package chat

import (
	"errors"
	"strings"
	"testing"

	"lanchat/mesh"
)

func peer(id, name string, st mesh.State) mesh.Peer {
	return mesh.Peer{ID: strings.Repeat(id, mesh.IDLen)[:mesh.IDLen], Name: name, State: st}
}

func TestResolve(t *testing.T) {
	alice := peer("A", "alice", mesh.Available)
	bob1 := peer("B", "bob", mesh.Available)
	bob2 := peer("C", "Bob", mesh.Away)
	carol := peer("D", "carol", mesh.Offline)
	all := []mesh.Peer{alice, bob1, bob2, carol}
	tests := []struct {
		name    string
		q       string
		want    string
		wantErr error
	}{
		{"exact name", "alice", alice.ID, nil},
		{"name ignores case", "ALICE", alice.ID, nil},
		{"whole id", bob1.ID, bob1.ID, nil},
		{"lower-case id", strings.ToLower(bob2.ID), bob2.ID, nil},
		{"id prefix", carol.ID[:5], carol.ID, nil},
		{"shared name", "bob", "", ErrAmbiguousRecipient},
		{"unknown", "dave", "", ErrUnknownRecipient},
		{"short prefix is not an id", "DDD", "", ErrUnknownRecipient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Resolve(tt.q, all)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want %v", tt.q, p.Name, err, tt.wantErr)
				}
				return
			}
			if err != nil || p.ID != tt.want {
				t.Fatalf("Resolve(%q) = %s, %v; want %s", tt.q, p.ID, err, tt.want)
			}
		})
	}
}

func TestRecipientErrorListsWhatToDo(t *testing.T) {
	all := []mesh.Peer{peer("B", "bob", mesh.Available), peer("C", "bob", mesh.Busy), peer("D", "carol", mesh.Offline)}
	_, err := Resolve("bob", all)
	for _, id := range []string{all[0].ID, all[1].ID} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("ambiguous error does not list %s:\n%v", id, err)
		}
	}
	_, err = Resolve("zed", all)
	msg := err.Error()
	if !strings.Contains(msg, "bob") || strings.Contains(msg, "carol") {
		t.Errorf("unknown-recipient error should list who is online (bob), not offline carol:\n%s", msg)
	}
}

func TestCheckText(t *testing.T) {
	for _, tt := range []struct {
		name string
		text string
		ok   bool
	}{
		{"plain", "hello", true},
		{"empty", "", false},
		{"blank", "  \n", false},
		{"bad utf8", "\xff\xfe", false},
		{"too long", strings.Repeat("x", 64<<10+1), false},
		{"at limit", strings.Repeat("x", 64<<10), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckText(tt.text); (err == nil) != tt.ok {
				t.Fatalf("CheckText: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
