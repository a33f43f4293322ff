package roomsync

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"lanchat/mesh"
	"lanchat/message"
)

// docExample builds the example exchange shown in doc.go with the code's
// own encoders.
func docExample(t *testing.T) string {
	alice, bob := seededIdentity(t, 1), seededIdentity(t, 2)
	hi := &message.Envelope{
		ID:           "0123456789abcdef0123456789abcd02",
		AuthorName:   "alice",
		Conversation: "#general",
		Seq:          2,
		Time:         message.Timestamp{Wall: 1_700_000_120_000_000_000},
		Kind:         message.KindText,
		Body:         "hi all",
	}
	sealed, err := message.Seal(hi, alice.key)
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
	header := func(f []byte, name string) {
		line(f[0:2], `frame magic "LS"`)
		line(f[2:3], fmt.Sprintf("frame type %#02x %s", f[2], name))
		line(f[3:7], fmt.Sprintf("payload length %d", binary.BigEndian.Uint32(f[3:])))
	}
	have := Vector{alice.id: 1, bob.id: 1}
	pullF := appendFrame(nil, FramePull, appendPull(nil, "#general", have))
	sb.WriteString("//\t# bob → alice: PULL frame\n")
	header(pullF, "PULL")
	p := pullF[7:]
	take := func(n int) []byte { b := p[:n]; p = p[n:]; return b }
	line(take(1), "room name length 8")
	line(take(8), `room name "#general"`)
	line(take(2), "2 vector entries")
	for range 2 {
		id := string(p[:mesh.IDLen])
		who := "alice"
		if id == bob.id {
			who = "bob"
		}
		line(take(mesh.IDLen), fmt.Sprintf("author %s (%s)", who, id))
		line(take(8), fmt.Sprintf("count %d", have[id]))
	}
	headF := appendFrame(nil, FrameHead, appendHead(nil, head{author: alice.id, after: 1, until: 2}))
	sb.WriteString("//\n//\t# alice → bob: HEAD frame\n")
	header(headF, "HEAD")
	p = headF[7:]
	line(take(mesh.IDLen), "author alice")
	line(take(8), "after 1")
	line(take(8), "until 2")
	pageF := appendFrame(nil, FramePage, appendPage(nil, [][]byte{sealed}))
	sb.WriteString("//\n//\t# alice → bob: PAGE frame\n")
	header(pageF, "PAGE")
	p = pageF[7:]
	line(take(2), "count 1")
	line(take(4), fmt.Sprintf("envelope length %d", len(sealed)))
	line(take(16), `envelope (section 5, version 2): alice's event 2 in #general, "hi all",`)
	sb.WriteString(fmt.Sprintf("//\t%-47s  %d bytes more, ending with alice's signature\n", "…", len(p)))
	doneF := appendFrame(nil, FrameDone, nil)
	sb.WriteString("//\n//\t# alice → bob: DONE frame; alice's Source learns (Ahead) that bob holds more of bob's events\n")
	header(doneF, "DONE")
	closeF := appendFrame(nil, FrameClose, []byte("done"))
	sb.WriteString("//\n//\t# bob → alice: CLOSE frame, and bob closes the stream\n")
	header(closeF, "CLOSE")
	line(closeF[7:], `reason "done"`)
	refF := appendFrame(nil, FrameRefuse, appendRefuse(nil, refuseDenied, "not a member of #ops"))
	sb.WriteString("//\n//\t# had bob asked for a room alice does not share with him: REFUSE frame\n")
	header(refF, "REFUSE")
	line(refF[7:8], "code 1 not authorized")
	line(refF[8:], `reason "not a member of #ops"`)
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

// The limits doc.go states in numbers.
func TestLimitsAsDocumented(t *testing.T) {
	def := DefaultConfig()
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"PULL payload", FramePull.maxPayload(), 245828},
		{"INDEX payload", FrameIndex.maxPayload(), 0},
		{"CLOSE payload", FrameClose.maxPayload(), 255},
		{"HEAD payload", FrameHead.maxPayload(), 68},
		{"PAGE payload", FramePage.maxPayload(), 1048576},
		{"DONE payload", FrameDone.maxPayload(), 0},
		{"REFUSE payload", FrameRefuse.maxPayload(), 256},
		{"MaxVectorLen", MaxVectorLen, 4096},
		{"envelope in a page", message.MaxEnvelope, 66205},
		{"PageEvents", def.PageEvents, 256},
		{"PageBytes", def.PageBytes, 1 << 20},
		{"MaxIndex", def.MaxIndex, 4096},
		{"RequestBurst", def.RequestBurst, 64},
		{"RequestRate", int(def.RequestRate), 4},
		{"MaxConcurrent", def.MaxConcurrent, 8},
		{"FrameTimeout", int(def.FrameTimeout.Seconds()), 30},
		{"IdleTimeout", int(def.IdleTimeout.Seconds()), 30},
		{"ResponseTimeout", int(def.ResponseTimeout.Seconds()), 30},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, doc.go says %d", c.name, c.got, c.want)
		}
	}
}
