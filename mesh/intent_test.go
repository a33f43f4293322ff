package mesh

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzDecodeLeaveIntent(f *testing.F) {
	f.Add(encodeLeaveIntent(runOf(strings.Repeat("A", IDLen), 0)))
	f.Add(encodeLeaveIntent(runOf(bobID, 0xfedcba9876543210)))
	f.Add(encodeLeaveIntent("not a member name"))
	f.Add([]byte{msgLeaveIntent})
	f.Add(append([]byte{msgLeaveIntent}, bytes.Repeat([]byte("A"), maxMemberName+1)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, ok := decodeLeaveIntent(b)
		if !ok {
			if name != "" {
				t.Fatalf("refused intent still named %q", name)
			}
			return
		}
		if len(b) > 1+maxMemberName || len(name) > maxMemberName {
			t.Fatalf("accepted %d bytes, limit %d", len(b), 1+maxMemberName)
		}
		if _, ok := splitMember(name); !ok {
			t.Fatalf("accepted intent names %q, not a run", name)
		}
		again, ok := decodeLeaveIntent(encodeLeaveIntent(name))
		if !ok || again != name {
			t.Fatalf("round trip of %q gave %q, %v", name, again, ok)
		}
	})
}
