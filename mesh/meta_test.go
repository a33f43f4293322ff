package mesh

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{Proto: ProtocolVersion, TLSPort: DefaultTLSPort, Started: 1, Name: "alice"},
		{Proto: ProtocolVersion, TLSPort: 1, Started: -1, State: Busy, Name: "Zoë ✓", Status: "in a meeting until 3"},
		{Proto: 9, TLSPort: 65535, Started: 1 << 62, State: Away, Name: string(bytes.Repeat([]byte("n"), MaxNameLen)), Status: string(bytes.Repeat([]byte("s"), MaxStatusLen))},
	} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, "reserved for later versions"...))
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{metaMagic}, MaxMetaLen+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrMeta) {
				t.Fatalf("error %v is not ErrMeta", err)
			}
			return
		}
		// What decodes is bounded by the limits, whatever the input claimed.
		if len(b) > MaxMetaLen || len(m.Name) > MaxNameLen || len(m.Status) > MaxStatusLen || m.State > Busy {
			t.Fatalf("decoded %+v from %d bytes: over a limit", m, len(b))
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		m2, err := DecodeMeta(again)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", m, err)
		}
		if m2 != m {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}
