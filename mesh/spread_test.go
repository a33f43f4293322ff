package mesh

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// The storm at 50 nodes (BENCHMARKS.md): every member asked a slow new
// node by handshake at the same moment, each failure made them ask again,
// and the node stayed offline for minutes. These pin the two halves of
// the cure: the members' first questions are spread, and one member's
// questions to a run that answers none thin out.

var stormRun = heldRun{id: "peer", member: "peer-0123456789abcdef", at: netip.MustParseAddrPort("10.0.0.9:7481")}

// TestChecksOfAFailingRunBackOff: a run that answers no check is asked
// less and less often, up to checkBackoffMax apart; being accused afresh
// (off the list and back on) does not reset that; one answer does.
func TestChecksOfAFailingRunBackOff(t *testing.T) {
	s := newCheckSchedule(rand.New(rand.NewPCG(1, 2)).Float64)
	const members = 50
	now := time.Unix(1000, 0)
	end := now.Add(5 * time.Minute)
	var asked []time.Time
	for ; now.Before(end); now = now.Add(checkTick) {
		for _, r := range s.due([]heldRun{stormRun}, members, now, holdDials) {
			asked = append(asked, now)
			// Each check finds nobody, after askWindow.
			s.done(r.member, false, members, now.Add(askWindow))
		}
	}
	// Asked every holdInterval while it fails, as before, would be a
	// check every askWindow+holdInterval, 60 in 5 minutes; the backoff
	// leaves about 20.
	if len(asked) > 25 {
		t.Fatalf("%d checks of a silent run in 5 minutes, want at most 25", len(asked))
	}
	for i := 2; i < len(asked); i++ {
		gap, prev := asked[i].Sub(asked[i-1]), asked[i-1].Sub(asked[i-2])
		if gap > checkBackoffMax+askWindow+checkTick {
			t.Errorf("check %d came %v after the one before, past the cap", i, gap)
		}
		if prev < checkBackoffMax/2 && gap+checkTick < prev*3/4 {
			t.Errorf("checks %d and %d: %v then %v apart, want the gaps to grow", i-1, i, prev, gap)
		}
	}
	if last := asked[len(asked)-1].Sub(asked[len(asked)-2]); last < checkBackoffMax/2 {
		t.Errorf("after 5 minutes of silence checks are %v apart, want about %v", last, checkBackoffMax)
	}

	// Taken off the list (lost) and put back (gossip says it is back):
	// still not asked before its backoff.
	if got := s.due(nil, members, now, holdDials); len(got) != 0 {
		t.Fatalf("asked %d runs off the list", len(got))
	}
	if got := s.due([]heldRun{stormRun}, members, now.Add(time.Second), holdDials); len(got) != 0 {
		t.Fatalf("a failing run accused again was asked at once")
	}

	// An answer resets it: asked again within the held cadence.
	now = now.Add(checkBackoffMax + askWindow)
	var got []heldRun
	for range 4 * checkBackoffMax / checkTick {
		if got = s.due([]heldRun{stormRun}, members, now, holdDials); len(got) > 0 {
			break
		}
		now = now.Add(checkTick)
	}
	if len(got) != 1 {
		t.Fatal("never asked again")
	}
	s.done(stormRun.member, true, members, now)
	answered := now
	for len(s.due([]heldRun{stormRun}, members, now, holdDials)) == 0 {
		now = now.Add(checkTick)
	}
	if d, want := now.Sub(answered), max(holdInterval, spreadOver(members)); d > want+checkTick {
		t.Errorf("a run that answered was asked again after %v, want within %v", d, want)
	}

	// Forgotten a while after it leaves the list: a later run of bad
	// luck starts afresh.
	s.due(nil, members, now, holdDials)
	s.done(stormRun.member, false, members, now)
	s.due(nil, members, now.Add(checkForget+time.Second), holdDials)
	if len(s.runs) != 0 {
		t.Errorf("%d runs remembered after checkForget", len(s.runs))
	}
}

// TestFirstChecksOfARunAreSpread: N−1 members hear the same accusation
// at once; their first questions reach the accused over spreadOver(N),
// about one every spreadPerMember, not in the same instant, and a small
// network still asks within a fraction of a second.
func TestFirstChecksOfARunAreSpread(t *testing.T) {
	for _, members := range []int{3, 10, 50, 200} {
		spread := spreadOver(members)
		perTick := make(map[time.Duration]int)
		var last time.Duration
		for i := range members - 1 {
			s := newCheckSchedule(rand.New(rand.NewPCG(uint64(members), uint64(i))).Float64)
			start := time.Unix(1000, 0)
			for at := time.Duration(0); ; at += checkTick {
				if len(s.due([]heldRun{stormRun}, members, start.Add(at), holdDials)) > 0 {
					perTick[at]++
					last = max(last, at)
					break
				}
				if at > time.Minute {
					t.Fatalf("%d members: never asked", members)
				}
			}
		}
		if last > spread+checkTick {
			t.Errorf("%d members: last first check after %v, want within %v", members, last, spread)
		}
		// Binomial slack over the expected count per tick.
		want := float64(members-1) * float64(checkTick) / float64(max(spread, checkTick))
		for at, n := range perTick {
			if float64(n) > 2*want+4 {
				t.Errorf("%d members: %d first checks in the tick at %v, want about %.1f", members, n, at, want)
			}
		}
	}
	if d := spreadOver(3); d > 200*time.Millisecond {
		t.Errorf("3 members spread their checks over %v: an unplug would show late", d)
	}
	if d := spreadOver(1000); d != spreadMax {
		t.Errorf("spreadOver(1000) = %v, want the cap %v", d, spreadMax)
	}
}
