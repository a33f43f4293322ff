package mesh

import (
	"bytes"
	"crypto/ed25519"
	"net/netip"
	"strings"
	"testing"
)

func FuzzDecodeLeaveIntent(f *testing.F) {
	f.Add(encodeLeaveIntent(runOf(strings.Repeat("A", IDLen), 0), testKey))
	f.Add(encodeLeaveIntent(runOf(bobID, 0xfedcba9876543210), testKey))
	f.Add(encodeLeaveIntent("not a member name", testKey))
	f.Add([]byte{msgLeaveIntent})
	f.Add(append([]byte{msgLeaveIntent}, bytes.Repeat([]byte("A"), maxMemberName+1+ed25519.SignatureSize)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, sig, ok := decodeLeaveIntent(b)
		if !ok {
			if name != "" || sig != nil {
				t.Fatalf("refused intent still named %q", name)
			}
			return
		}
		if len(b) > 1+maxMemberName+ed25519.SignatureSize || len(name) > maxMemberName || len(sig) != ed25519.SignatureSize {
			t.Fatalf("accepted %d bytes, limit %d", len(b), 1+maxMemberName+ed25519.SignatureSize)
		}
		if _, ok := splitMember(name); !ok {
			t.Fatalf("accepted intent names %q, not a run", name)
		}
		again, _, ok := decodeLeaveIntent(encodeLeaveIntent(name, testKey))
		if !ok || again != name {
			t.Fatalf("round trip of %q gave %q, %v", name, again, ok)
		}
	})
}

func TestLeaveIntentOfAnotherKeyIsRefused(t *testing.T) {
	id := testIdentity(t)
	q := newEventQueue()
	g := newGate(runOf(selfID, 1), selfID, gateLimits{maxPeers: 8, maxUnverified: 8, maxPerAddr: 8}, q)
	member := runOf(id.ID, 7)
	if err := g.admit(signedNode(t, id, member, testMeta(), netip.MustParseAddrPort("192.0.2.9:7480"))); err != nil {
		t.Fatal(err)
	}
	_, forged, _ := decodeLeaveIntent(encodeLeaveIntent(member, testKey))
	if g.leaving(member, forged) {
		t.Fatal("an intent signed by another key was taken")
	}
	_, sig, _ := decodeLeaveIntent(encodeLeaveIntent(member, id.Key))
	if !g.leaving(member, sig) {
		t.Fatal("the run's own intent was refused")
	}
	if _, sig, _ := decodeLeaveIntent(encodeLeaveIntent(runOf(id.ID, 8), id.Key)); g.leaving(runOf(id.ID, 8), sig) {
		t.Fatal("an intent for a run never seen was taken")
	}
}
