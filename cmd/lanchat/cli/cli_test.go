package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"lanchat/node/api"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		cmd  string
		rest []string
	}{
		{"plain", []string{"send", "bob", "hi"}, "send", []string{"bob", "hi"}},
		{"flag before", []string{"--data-dir", "/x", "send", "bob"}, "send", []string{"--data-dir", "/x", "bob"}},
		{"flag=value before", []string{"--name=al", "peers"}, "peers", []string{"--name=al"}},
		{"bool flag before", []string{"--json", "peers"}, "peers", []string{"--json"}},
		{"flag after", []string{"peers", "--json"}, "peers", []string{"--json"}},
		{"none", []string{"--json"}, "", []string{"--json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, rest := splitCommand(tt.args)
			if cmd != tt.cmd || strings.Join(rest, " ") != strings.Join(tt.rest, " ") {
				t.Fatalf("got %q %q, want %q %q", cmd, rest, tt.cmd, tt.rest)
			}
		})
	}
}

func TestEnvFallbackAndFlagPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LANCHAT_DATA_DIR", dir)
	t.Setenv("LANCHAT_NAME", "from-env")
	var out, errb bytes.Buffer
	if code := Main([]string{"id", "--json"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var v idOutput
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Name != "from-env" || len(v.ID) != 52 {
		t.Fatalf("id --json = %s (%v)", out.String(), err)
	}
	out.Reset()
	if code := Main([]string{"--name", "from-flag", "id", "--json"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var w idOutput
	json.Unmarshal(out.Bytes(), &w)
	if w.Name != "from-flag" || w.ID != v.ID {
		t.Fatalf("flag did not win over env, or id changed: %+v vs %+v", w, v)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Main([]string{c.name, "--help"}, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d", code)
			}
			s := out.String()
			if !strings.Contains(s, "example:") || !strings.Contains(s, "lanchat "+c.name) || !strings.Contains(s, "--data-dir") {
				t.Fatalf("help lacks usage, example or flags:\n%s", s)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"unknown flag", []string{"peers", "--bogus"}, exitUsage},
		{"send without text", []string{"send", "bob"}, exitUsage},
		{"bad state", []string{"status", "sleeping"}, exitUsage},
		{"bad log level", []string{"id", "--log-level", "loud"}, exitUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			t.Setenv("LANCHAT_DATA_DIR", t.TempDir())
			if code := Main(tt.args, nil, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			if errb.Len() == 0 {
				t.Fatal("no message on standard error")
			}
		})
	}
}

func TestHostileTextNeverReachesTerminalRaw(t *testing.T) {
	for _, tt := range []struct {
		name, in string
	}{
		{"ansi clear screen", "hi\x1b[2J\x1b[H"},
		{"bidi override", "invoice\u202Egpj.exe"},
		{"bell and backspace", "a\x07\x08b"},
		{"zero width", "ad\u200Bmin"},
		{"line separator", "a\u2028b"},
		{"invalid utf8", "a\xffb"},
		{"c1 control", "a\u009bb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []string{cleanLine(tt.in), cleanLines(tt.in)} {
				for _, r := range s {
					if invisible(r) && r != '\n' && r != '\uFFFD' {
						t.Fatalf("%q kept %U", s, r)
					}
				}
			}
			var b bytes.Buffer
			writeJSON(&b, map[string]string{"text": tt.in})
			for _, r := range b.String() {
				if invisible(r) && r != '\n' && r != '\uFFFD' {
					t.Fatalf("JSON %q kept %U", b.String(), r)
				}
			}
			var back map[string]string
			if err := json.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if tt.name != "invalid utf8" && back["text"] != tt.in {
				t.Fatalf("JSON did not round-trip: %q", back["text"])
			}
		})
	}
}

func TestMultiLineMessageCannotForgeAnEvent(t *testing.T) {
	got := cleanLines("ok\n12:00:00 * mallory is now available")
	if !strings.Contains(got, "\n    12:00:00") {
		t.Fatalf("continuation line not indented: %q", got)
	}
}

func TestRoomMessageIsNotShownAsADirectMessage(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&env{g: &globalArgs{}, stdout: &out, stderr: &out})
	p.print(api.Message{From: api.PeerRef{ID: "X", Name: "bob"}, To: api.PeerRef{ID: "#general", Name: "#general"},
		Room: "#general", Text: "send me your password"})
	p.print(api.Message{From: api.PeerRef{ID: "X", Name: "bob"}, Text: "direct"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " [#general] bob: send me") || !strings.Contains(lines[1], " bob: direct") || strings.Contains(lines[1], "#") {
		t.Fatalf("printed %q", lines)
	}
}
