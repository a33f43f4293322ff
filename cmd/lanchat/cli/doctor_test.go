package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"lanchat/node/api"
)

// doctor prints one line per finding and the fix under any that is not
// ok; a failure makes the exit code 1; --json prints the report itself;
// a hostile peer name cannot put control characters on the terminal.
func TestDoctorOutput(t *testing.T) {
	f := newFakeNode()
	dir := served(t, f)
	f.doctor = api.DoctorReport{Running: true, Findings: []api.Finding{
		{Check: "dial-back-udp", Status: api.FindingWarn, Detail: "this node's gossip port 7480 over UDP is not reached from bob: timeout", Fix: "allow UDP port 7480 in this machine's firewall"},
		{Check: "clock", Status: api.FindingOK, Detail: "clock agrees within 5s with bob", Fix: "never shown"},
	}}
	code, out, errs := lanchat(t, dir, "doctor")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "WARN dial-back-udp") ||
		!strings.Contains(lines[1], "→ allow UDP port 7480") || !strings.HasPrefix(lines[2], "ok   clock") || strings.Contains(out, "never shown") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr %q", code, out, errs)
	}

	f.doctor.Findings = append(f.doctor.Findings, api.Finding{Check: "peer-message-port", Status: api.FindingFail,
		Detail: "message port does not answer\x1b[2J", Fix: "allow TCP port 7481 on mal\nlory's machine"})
	code, out, _ = lanchat(t, dir, "doctor", "bob")
	if code != exitFail || f.doctorQ.Peer != "bob" || strings.Contains(out, "\x1b") || !strings.Contains(out, "FAIL peer-message-port") {
		t.Fatalf("exit %d (query %+v), stdout %q", code, f.doctorQ, out)
	}

	code, out, _ = lanchat(t, dir, "doctor", "--json")
	var rep api.DoctorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitFail || len(rep.Findings) != 3 || rep.Findings[0].Fix != f.doctor.Findings[0].Fix {
		t.Fatalf("exit %d, --json %q: %v", code, out, err)
	}
}
