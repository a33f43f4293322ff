package message

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// docExample builds the example exchange shown in doc.go: alice (key seed
// 0x01…) sends "hi" to bob (key seed 0x02…), and bob acknowledges it.
func docExample(t *testing.T) string {
	key, _ := testKey(1)
	_, bob := testKey(2)
	env := Envelope{
		ID:         "00112233445566778899aabbccddeeff",
		AuthorName: "alice",
		To:         bob,
		Time:       Timestamp{Wall: 1_700_000_000_000_000_000, Logical: 0},
		Kind:       KindText,
		Body:       "hi",
	}
	sealed, err := Seal(&env, key)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	line := func(b []byte, what string) {
		for i := 0; i < len(b) || i == 0; i += 16 {
			chunk := b[i:min(i+16, len(b))]
			h := hex.EncodeToString(chunk)
			var parts []string
			for j := 0; j < len(h); j += 2 {
				parts = append(parts, h[j:j+2])
			}
			note := ""
			if i == 0 {
				note = what
			}
			l := fmt.Sprintf("//\t%-47s  %s", strings.Join(parts, " "), note)
			sb.WriteString(strings.TrimRight(l, " ") + "\n")
		}
	}
	msg := func(env *Envelope, sealed []byte) {
		frame := AppendFrame(nil, FrameMsg, sealed)
		line(frame[0:2], `frame magic "LM"`)
		line(frame[2:3], "frame type 0x01 MSG")
		line(frame[3:7], fmt.Sprintf("payload length %d", len(sealed)))
		p := sealed
		take := func(n int) []byte { b := p[:n]; p = p[n:]; return b }
		line(take(2), `envelope magic "LE"`)
		line(take(1), fmt.Sprintf("envelope version %d", sealed[2]))
		line(take(16), "message id "+env.ID)
		line(take(32), "author public key (Ed25519)")
		line(take(8), fmt.Sprintf("wall time %d ns (%s)", env.Time.Wall, env.Time.WallTime().UTC().Format(time.RFC3339)))
		line(take(4), fmt.Sprintf("logical %d", env.Time.Logical))
		if sealed[2] == EnvelopeV2 {
			line(take(8), fmt.Sprintf("seq %d", env.Seq))
		}
		for _, f := range []struct{ name, val string }{
			{"author", env.Author}, {"to", env.To}, {"conversation", env.Conversation}, {"kind", env.Kind}, {"author name", env.AuthorName},
		} {
			n := binary.BigEndian.Uint16(p)
			line(take(2), fmt.Sprintf("%s length %d", f.name, n))
			if n > 0 {
				line(take(int(n)), fmt.Sprintf("%s %q", f.name, f.val))
			}
		}
		line(take(4), fmt.Sprintf("body length %d", len(env.Body)))
		if len(env.Body) > 0 {
			line(take(len(env.Body)), fmt.Sprintf("body %q", env.Body))
		}
		line(take(64), "Ed25519 signature over every envelope byte above")
		if len(p) != 0 {
			t.Fatalf("%d bytes left over", len(p))
		}
	}
	sb.WriteString("//\t# alice → bob: MSG frame\n")
	msg(&env, sealed)
	var id [16]byte
	copy(id[:], sealed[offID:])
	ack := AppendFrame(nil, FrameAck, AppendAck(nil, Ack{ID: id, Status: AckOK}))
	sb.WriteString("//\n//\t# bob → alice: ACK frame\n")
	line(ack[0:2], `frame magic "LM"`)
	line(ack[2:3], "frame type 0x02 ACK")
	line(ack[3:7], "payload length 18")
	line(ack[7:23], "message id")
	line(ack[23:24], "status 0 ok")
	line(ack[24:25], "reason length 0")
	room := Envelope{
		ID:           "0123456789abcdef0123456789abcdef",
		AuthorName:   "alice",
		Conversation: "#general",
		Seq:          1,
		Time:         Timestamp{Wall: 1_700_000_060_000_000_000, Logical: 0},
		Kind:         KindJoin,
	}
	roomSealed, err := Seal(&room, key)
	if err != nil {
		t.Fatal(err)
	}
	sb.WriteString("//\n//\t# alice → bob, later: her first event in room #general, a join (version 2)\n")
	msg(&room, roomSealed)
	sb.WriteString("//\n//\t# bob → alice: ACK frame for it, as above, with message id 0123456789abcdef0123456789abcdef\n")
	cl := AppendFrame(nil, FrameClose, []byte("idle"))
	sb.WriteString("//\n//\t# either side, before closing a stream: CLOSE frame\n")
	line(cl[0:2], `frame magic "LM"`)
	line(cl[2:3], "frame type 0x03 CLOSE")
	line(cl[3:7], "payload length 4")
	line(cl[7:], `reason "idle"`)
	return sb.String()
}

// The example exchange in doc.go is what the code produces.
func TestDocExample(t *testing.T) {
	want := docExample(t)
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), want) {
		t.Fatalf("doc.go's example exchange is out of date; it should read:\n%s", want)
	}
}
