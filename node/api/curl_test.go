package api

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCurl runs API.md's kind of curl commands against the handler: no
// Content-Type on bodies, -w for the status, -N for the event stream.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (the e2e tests need it; here it only checks API.md's examples)")
	}
	f := newFake()
	sock, _ := serve(t, f, testConfig())
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--unix-socket", sock}, args...)...).Output()
		return string(out), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-w", "\n%{http_code}", "http://lanchat/v1/peers"}, `"name":"bob"`},
		{[]string{"-w", "\n%{http_code}", "-d", `{"to":"bob","text":"hi"}`, "http://lanchat/v1/messages"}, "\n201"},
		{[]string{"-w", "\n%{http_code}", "-X", "PUT", "-d", `{"state":"away","text":"lunch"}`, "http://lanchat/v1/status"}, `{"state":"away","text":"lunch","live":true}` + "\n\n200"},
		{[]string{"-w", "\n%{http_code}", "http://lanchat/v1/history?since=2024-05-01T12:00:00+02:00"}, "\n200"},
		{[]string{"-w", "\n%{http_code}", "http://lanchat/v1/history?peer=%23general&limit=2"}, "\n200"},
		{[]string{"-w", "\n%{http_code}", "-G", "--data-urlencode", "search=lunch", "--data-urlencode", "since=2024-05-01T00:00:00Z", "http://lanchat/v1/history"}, "\n200"},
		{[]string{"-w", "\n%{http_code}", "-d", `{"ids":["m1"]}`, "http://lanchat/v1/read"}, "\n204"},
		{[]string{"-w", "\n%{http_code}", "-d", `{"to":"bob"`, "http://lanchat/v1/messages"}, `{"code":"invalid","error":"request body: malformed JSON: it ends too soon"}` + "\n\n400"},
		{[]string{"-w", "\n%{http_code}", "http://lanchat/v1/rooms"}, `"name":"#general","joined":true`},
		{[]string{"-w", "\n%{http_code}", "-d", `{"room":"#ops"}`, "http://lanchat/v1/rooms/join"}, `{"name":"#ops","joined":true,"members_online":2,"members_total":2,"unread":0,"retention":0}` + "\n\n200"},
		{[]string{"-w", "\n%{http_code}", "-d", `{"room":"#ops"}`, "http://lanchat/v1/rooms/leave"}, `"joined":false,"members_online":1,"members_total":1,"unread":0,"retention":0}` + "\n\n200"},
		{[]string{"-w", "\n%{http_code}", "http://lanchat/v1/rooms/members?room=%23general"}, `"name":"alice","state":"available","online":true`},
		{[]string{"-w", "\n%{http_code}", "-G", "--data-urlencode", "room=#general", "http://lanchat/v1/rooms/members"}, "\n200"},
		{[]string{"-w", "\n%{http_code}", "http://lanchat/v1/rooms/members?room=#general"}, `"room\" is required` + ""},
		{[]string{"-w", "\n%{http_code}", "-d", `{"to":"#general","text":"standup in 5"}`, "http://lanchat/v1/messages"}, "\n201"},
	} {
		out, err := run(tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("curl %s: %v\n%s\nwant %q in it", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if f.sendReq != (SendRequest{To: "#general", Text: "standup in 5"}) || f.status != (StatusRequest{State: "away", Text: "lunch"}) {
		t.Errorf("the fake got %+v and %+v", f.sendReq, f.status)
	}
	if f.hist.Search != "lunch" || !f.hist.Since.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("history query %+v", f.hist)
	}
	if f.membersOf != "#general" {
		t.Errorf("members of %q, want #general", f.membersOf)
	}

	out, err := run("-N", "--max-time", "2", "http://lanchat/v1/events")
	if exitErr, ok := errors.AsType[*exec.ExitError](err); !ok || exitErr.ExitCode() != 28 {
		t.Errorf("curl -N --max-time 2: %v, want exit 28 (timed out, stream still open)", err)
	}
	if !strings.HasPrefix(out, `{"type":"snapshot","seq":`) {
		t.Errorf("event stream began %q", out)
	}
}
