package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"lanchat/node/api"
)

func finding(rep api.DoctorReport, check string) (api.Finding, bool) {
	for _, f := range rep.Findings {
		if f.Check == check {
			return f, true
		}
	}
	return api.Finding{}, false
}

// doctor on a running node: the peer answers on every port; once it is
// gone, the message port is reported as not answering, with a fix, and
// the report fails.
func TestDoctorProbesAPeer(t *testing.T) {
	a := start(t, "alice")
	b := start(t, "bob", a.gossip())
	ctx := context.Background()
	waitFor(t, "alice sees bob verified", 5*time.Second, func() bool {
		ps := a.peers()
		return len(ps) == 1 && ps[0].Verified
	})
	var rep api.DoctorReport
	var err error
	// A UDP probe can miss on a loaded machine: asked again (bob dials
	// back three times at once, then once every 5 s), it must answer.
	waitFor(t, "bob reaches alice's ports by UDP", 15*time.Second, func() bool {
		if rep, err = a.n.Doctor(ctx, api.DoctorQuery{Peer: "bob"}); err != nil {
			t.Fatal(err)
		}
		f, _ := finding(rep, "dial-back-udp")
		return f.Status == api.FindingOK
	})
	if rep.Peer == nil || rep.Peer.ID != b.info().ID || !rep.Running {
		t.Fatalf("report about %+v, running %v", rep.Peer, rep.Running)
	}
	for _, f := range rep.Findings {
		t.Logf("%s %s: %s -> %s", f.Status, f.Check, f.Detail, f.Fix)
	}
	for _, check := range []string{"peer-gossip-udp", "peer-gossip-tcp", "peer-message-port", "peers", "dial-back-udp", "dial-back-tcp", "dial-back-message-port", "clock"} {
		f, ok := finding(rep, check)
		if !ok || f.Status != api.FindingOK {
			t.Errorf("%s: %+v (found %v), want ok", check, f, ok)
		}
	}
	b.stop()
	rep, err = a.n.Doctor(ctx, api.DoctorQuery{Peer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := finding(rep, "peer-message-port")
	if f.Status != api.FindingFail || !strings.Contains(f.Detail, "does not answer") || f.Fix == "" {
		t.Fatalf("message port of a stopped peer: %+v", f)
	}
	if _, err := a.n.Doctor(ctx, api.DoctorQuery{Peer: "nobody"}); err == nil {
		t.Fatal("doctor of an unknown peer: no error")
	}
}
