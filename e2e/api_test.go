//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// TestAPIWithCurl drives a node's local API the way a script does, with
// curl on its control socket, as API.md documents it.
func TestAPIWithCurl(t *testing.T) {
	t.Parallel()
	curl := curlBin(t)
	lab := netlab.New(t, 2)
	nodes := startNodes(t, lab.Hosts, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	api := &curlAPI{curl: curl, host: alice.host, sock: alice.ready.Control}

	t.Run("self", func(t *testing.T) {
		var self struct {
			ID      string `json:"id"`
			Name    string `json:"name"`
			Running bool   `json:"running"`
			Control string `json:"control"`
		}
		api.mustJSON(t, "GET", "/v1/self", "", 200, &self)
		if self.ID != alice.id() || self.Name != "alice" || !self.Running || self.Control != alice.ready.Control {
			t.Errorf("self %+v, want id %s, name alice, running, control %s", self, alice.id(), alice.ready.Control)
		}
	})

	t.Run("peers", func(t *testing.T) {
		waitFor(t, seeTimeout, func() error {
			var ps []peer
			if err := api.json("GET", "/v1/peers", "", 200, &ps); err != nil {
				return err
			}
			if es := entries(ps, bob.id()); len(es) != 1 || es[0].Name != "bob" || es[0].State != "available" {
				return fmt.Errorf("peers lists bob as %+v, want one available entry", es)
			}
			return nil
		})
	})

	var sentID string
	t.Run("send", func(t *testing.T) {
		var reply struct {
			ID    string  `json:"id"`
			To    peerRef `json:"to"`
			State string  `json:"state"`
		}
		api.mustJSON(t, "POST", "/v1/messages", `{"to":"bob","text":"hello over curl"}`, 201, &reply)
		if reply.ID == "" || reply.To.ID != bob.id() || reply.To.Name != "bob" || (reply.State != "delivered" && reply.State != "read") {
			t.Fatalf("send reply %+v, want an id, to bob (%.12s), state delivered", reply, bob.id())
		}
		sentID = reply.ID
		waitMessage(t, bob, alice.id(), "hello over curl")
	})

	t.Run("history", func(t *testing.T) {
		if sentID == "" {
			t.Skip("nothing was sent")
		}
		var hs []histEntry
		api.mustJSON(t, "GET", "/v1/history?peer=bob", "", 200, &hs)
		found := false
		for _, h := range hs {
			if h.ID == sentID {
				found = true
				if h.Text != "hello over curl" || !h.Outgoing || h.To.ID != bob.id() || h.From.ID != alice.id() {
					t.Errorf("history entry %+v, want the message sent to bob", h)
				}
			}
		}
		if !found {
			t.Errorf("history with bob %+v lacks message %s", hs, sentID)
		}
	})

	t.Run("outbox", func(t *testing.T) {
		// Nothing waits (bob is online): an empty list, never null.
		status, reply, err := api.do("GET", "/v1/outbox", "")
		if err != nil {
			t.Fatal(err)
		}
		var ob []outboxEntry
		if status != 200 || json.Unmarshal([]byte(reply), &ob) != nil || !strings.HasPrefix(reply, "[") {
			t.Errorf("GET /v1/outbox: %d %q, want 200 and a JSON list", status, reply)
		}
	})

	t.Run("status", func(t *testing.T) {
		since := time.Now()
		var reply struct {
			State string `json:"state"`
			Text  string `json:"text"`
			Live  bool   `json:"live"`
		}
		api.mustJSON(t, "PUT", "/v1/status", `{"state":"away","text":"lunch"}`, 200, &reply)
		if reply.State != "away" || reply.Text != "lunch" || !reply.Live {
			t.Errorf("status reply %+v, want away, lunch, live", reply)
		}
		waitFor(t, seeTimeout, func() error {
			ev, ok := bob.presenceSince(alice.id(), "away", since)
			if !ok {
				last, _ := bob.presence(alice.id())
				return fmt.Errorf("bob has no presence event with alice away; last: %s", last.raw)
			}
			if ev.StatusText != "lunch" || ev.Change != "status" {
				return fmt.Errorf("bob's presence event %s, want status_text lunch, change status", ev.raw)
			}
			return nil
		})
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"malformed body", "POST", "/v1/messages", `{"to":"bob","text":`, 400, "invalid"},
			{"unknown field", "POST", "/v1/messages", `{"to":"bob","text":"hi","cc":"carol"}`, 400, "invalid"},
			{"bad limit", "GET", "/v1/history?limit=abc", "", 400, "invalid"},
			{"unknown path", "GET", "/v1/nothing", "", 404, "not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var e struct {
					Code  string `json:"code"`
					Error string `json:"error"`
				}
				api.mustJSON(t, tc.method, tc.path, tc.body, tc.status, &e)
				if e.Code != tc.code || e.Error == "" {
					t.Errorf("error %+v, want code %s and a message", e, tc.code)
				}
			})
		}
	})

	t.Run("events", func(t *testing.T) {
		out, err := api.run(context.Background(), "-N", "--max-time", "3", "http://lanchat/v1/events")
		// curl exits 28 when --max-time ends a stream that still runs.
		if exitErr, ok := errors.AsType[*exec.ExitError](err); !ok || exitErr.ExitCode() != 28 {
			t.Fatalf("curl -N --max-time 3 /v1/events: %v, want exit 28 (the stream still open)\n%s", err, out)
		}
		first, _, _ := strings.Cut(out, "\n")
		var snap struct {
			Type string          `json:"type"`
			Seq  json.RawMessage `json:"seq"`
			Self peerRef         `json:"self"`
		}
		if err := json.Unmarshal([]byte(first), &snap); err != nil {
			t.Fatalf("first line %q: %v", first, err)
		}
		if _, err := strconv.ParseUint(string(snap.Seq), 10, 64); snap.Type != "snapshot" || err != nil {
			t.Errorf("first line %q, want a snapshot with a seq", first)
		}
		if snap.Self.ID != alice.id() {
			t.Errorf("snapshot self %+v, want alice %.12s", snap.Self, alice.id())
		}
	})
}

// curlBin is the curl command, or the test skips (fails in CI) without it.
func curlBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed; .ci/run must install it")
		}
		t.Skip("curl is not installed: the API test drives the control socket with curl")
	}
	return p
}

// curlAPI runs curl against a node's control socket on its host.
type curlAPI struct {
	curl string
	host *netlab.Host
	sock string
}

// run runs curl with args after the socket option and returns its stdout.
func (a *curlAPI) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	cmd := a.host.Command(ctx, a.curl, append([]string{"-sS", "--unix-socket", a.sock}, args...)...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("curl %s on %s: %w\nstderr: %s", strings.Join(args, " "), a.host, err, stderr.String())
	}
	return stdout.String(), err
}

// do makes one request and returns its status and reply body.
func (a *curlAPI) do(method, path, body string) (int, string, error) {
	args := []string{"-X", method, "-w", "\n%{http_code}"}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", body)
	}
	out, err := a.run(context.Background(), append(args, "http://lanchat"+path)...)
	if err != nil {
		return 0, out, err
	}
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return 0, out, fmt.Errorf("%s %s: curl printed no status: %q", method, path, out)
	}
	status, err := strconv.Atoi(out[i+1:])
	if err != nil {
		return 0, out, fmt.Errorf("%s %s: curl printed no status: %q", method, path, out)
	}
	return status, out[:i], nil
}

// json makes one request, checks its status and decodes its reply into v.
func (a *curlAPI) json(method, path, body string, status int, v any) error {
	got, reply, err := a.do(method, path, body)
	if err != nil {
		return err
	}
	if got != status {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, got, status, reply)
	}
	if err := json.Unmarshal([]byte(reply), v); err != nil {
		return fmt.Errorf("%s %s: reply %q: %w", method, path, reply, err)
	}
	return nil
}

// mustJSON is json failing the test.
func (a *curlAPI) mustJSON(t *testing.T, method, path, body string, status int, v any) {
	t.Helper()
	if err := a.json(method, path, body, status, v); err != nil {
		t.Fatal(err)
	}
}
