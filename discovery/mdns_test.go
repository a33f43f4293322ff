package discovery

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
)

// fast is a config with shrunk timers for tests.
func fast(self *Candidate) Config {
	return Config{
		Self:          self,
		QuickQueries:  3,
		QuickInterval: 50 * time.Millisecond,
		SlowInterval:  200 * time.Millisecond,
	}
}

// peer returns a candidate to advertise on the loopback address.
func peer(t *testing.T, gossip uint16) *Candidate {
	return &Candidate{
		ID:         newID(t),
		Addrs:      addrs("127.0.0.1", "fd00::7"),
		GossipPort: gossip,
		TLSPort:    gossip + 1,
		Proto:      1,
		Network:    "k1-test",
	}
}

func TestNewChecksSelf(t *testing.T) {
	tests := []struct {
		name string
		self Candidate
	}{
		{"bad id", Candidate{ID: "alice", GossipPort: 1, TLSPort: 2}},
		{"no ports", Candidate{ID: fixedID}},
		{"multicast address", Candidate{ID: fixedID, GossipPort: 1, TLSPort: 2, Addrs: addrs("224.0.0.251")}},
		{"bad network", Candidate{ID: fixedID, GossipPort: 1, TLSPort: 2, Network: "a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{Self: &tt.self}); !errors.Is(err, ErrInvalidTXT) {
				t.Errorf("New = %v, want an error wrapping ErrInvalidTXT", err)
			}
		})
	}
}

func TestNewStartsNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	m, err := New(Config{Self: &Candidate{ID: fixedID, GossipPort: 1, TLSPort: 2, Addrs: addrs("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("New started %d goroutines", n-before)
	}
	if m.cfg.QuickQueries != 3 || m.cfg.QuickInterval != 250*time.Millisecond || m.cfg.SlowInterval != 10*time.Second {
		t.Errorf("defaults not applied: %+v", m.cfg)
	}
	if got := m.window(m.cfg.QuickInterval); got != 200*time.Millisecond {
		t.Errorf("quick window %v, want 200ms", got)
	}
	if got := m.window(m.cfg.SlowInterval); got != MaxQueryWindow {
		t.Errorf("slow window %v, want %v", got, MaxQueryWindow)
	}
	m.Refresh()
	m.Refresh() // never blocks
}

func TestNewAdvertisesLocalAddrsWhenNoneGiven(t *testing.T) {
	if len(localAddrs(nil)) == 0 {
		t.Skip("no interface addresses here")
	}
	m, err := New(Config{Self: &Candidate{ID: fixedID, GossipPort: 1, TLSPort: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.zone.IPs) == 0 {
		t.Error("no addresses advertised")
	}
	c, err := ParseTXT(m.zone.TXT)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Addrs) != len(m.zone.IPs) {
		t.Errorf("TXT lists %v, A/AAAA records %v", c.Addrs, m.zone.IPs)
	}
}

func TestRunNeedsFound(t *testing.T) {
	m, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context(), nil); err == nil {
		t.Error("Run(nil) = nil, want an error")
	}
}

// TestFindEachOther runs two advertising nodes and a browse-only one in a
// namespace with multicast: the two find each other and are found by the
// third, which nobody finds.
func TestFindEachOther(t *testing.T) {
	if !inNetns(t, withMulticast()) {
		return
	}
	goroutines := runtime.NumGoroutine()

	browser := start(t, "browse", fast(nil))
	aSelf, bSelf := peer(t, 7001), peer(t, 7003)
	a := start(t, "a", fast(aSelf))
	bStart := time.Now()
	b := start(t, "b", fast(bSelf))

	waitFor(t, "a and b to find each other", func() bool {
		return a.seen.count(bSelf.ID) > 0 && b.seen.count(aSelf.ID) > 0
	})
	waitFor(t, "the browser to find a and b", func() bool {
		return browser.seen.count(aSelf.ID) > 0 && browser.seen.count(bSelf.ID) > 0
	})
	got, _, _ := a.seen.first(bSelf.ID)
	_, when, _ := b.seen.first(aSelf.ID)
	// b started after a: its first query finds a.
	t.Logf("b found a %v after b started", when.Sub(bStart))
	want := *bSelf
	want.Addrs = addrs("127.0.0.1", "fd00::7")
	if !equalCandidate(got, want) {
		t.Errorf("a found\n %+v\nwant\n %+v", got, want)
	}

	// Once known, a node is not heard again (the queries list it as a
	// known answer) until half its TTL is gone.
	waitFor(t, "a and b to query three times", func() bool {
		return len(a.log.records(slog.LevelDebug, "query sent")) >= 3 && len(b.log.records(slog.LevelDebug, "query sent")) >= 3
	})
	time.Sleep(100 * time.Millisecond) // the last window
	if n := a.seen.count(bSelf.ID); n > 2 {
		t.Errorf("a found b %d times, want once (twice if b's announcement came first)", n)
	}
	for _, r := range []*runner{a, b, browser} {
		for _, id := range r.seen.ids() {
			if id != aSelf.ID && id != bSelf.ID {
				t.Errorf("found unknown id %s", id)
			}
		}
	}
	if n := a.seen.count(aSelf.ID) + b.seen.count(bSelf.ID); n != 0 {
		t.Errorf("nodes found themselves %d times", n)
	}

	for _, r := range []*runner{a, b, browser} {
		r.stop(t)
		if n := len(r.log.records(slog.LevelWarn, "")); n != 0 {
			t.Errorf("%d warnings", n)
		}
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
}

// equalCandidate compares two candidates, ignoring the order of addresses.
func equalCandidate(a, b Candidate) bool {
	sort := func(s []netip.Addr) []netip.Addr {
		s = slices.Clone(s)
		slices.SortFunc(s, netip.Addr.Compare)
		return s
	}
	return a.ID == b.ID && a.GossipPort == b.GossipPort && a.TLSPort == b.TLSPort &&
		a.Proto == b.Proto && a.Network == b.Network && slices.Equal(sort(a.Addrs), sort(b.Addrs))
}

// TestRefresh checks that Refresh sends a query at once.
func TestRefresh(t *testing.T) {
	if !inNetns(t, withMulticast()) {
		return
	}
	bSelf := peer(t, 7003)
	b := start(t, "b", fast(bSelf))
	waitFor(t, "b's responder", func() bool {
		return len(b.log.records(slog.LevelDebug, "responder started")) > 0
	})
	cfg := fast(nil)
	cfg.QuickQueries = 1
	cfg.SlowInterval = time.Hour
	cfg.QueryWindow = 100 * time.Millisecond
	a := start(t, "a", cfg)
	waitFor(t, "a to find b", func() bool { return a.seen.count(bSelf.ID) == 1 })
	for i := 2; i <= 4; i++ {
		before := time.Now()
		a.m.Refresh()
		waitFor(t, "a to query again", func() bool { return len(a.log.records(slog.LevelDebug, "query sent")) == i })
		t.Logf("refresh %d sent in %v", i-1, time.Since(before))
	}
}

// foreignZone answers the lanchat question with the records of another
// service, as a responder that answers everything, or an unsolicited
// announcement of that service, would.
type foreignZone struct{ other *mdns.MDNSService }

func (z foreignZone) Records(q dns.Question) []dns.RR {
	if q.Name != ServiceName+"."+Domain+"." {
		return nil
	}
	return z.other.Records(dns.Question{Name: "_other._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET})
}

// TestForeignAndMalformedAnswersIgnored runs, next to a valid node, a
// responder that answers with another service's records (with a valid
// lanchat TXT record) and a lanchat responder whose TXT record is invalid.
// Only the valid node is found, and browsing goes on.
func TestForeignAndMalformedAnswersIgnored(t *testing.T) {
	if !inNetns(t, withMulticast()) {
		return
	}
	libLog, _ := newLogger(t, "zones")
	serve := func(z mdns.Zone) {
		srv, err := mdns.NewServer(&mdns.Config{Zone: z, Logger: slog.NewLogLogger(libLog.Handler(), slog.LevelDebug)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	lo := []net.IP{net.IPv4(127, 0, 0, 1)}

	evil := peer(t, 7005)
	evilTXT, err := EncodeTXT(*evil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := mdns.NewMDNSService("evil", "_other._tcp", "local.", "evil.local.", 80, lo, evilTXT)
	if err != nil {
		t.Fatal(err)
	}
	serve(foreignZone{other})

	broken, err := mdns.NewMDNSService("broken", ServiceName, "local.", "broken.local.", 80, lo,
		[]string{"id=" + newID(t), "v=1", "gp=0", "tp=65536", "addrs=\\255\\255"})
	if err != nil {
		t.Fatal(err)
	}
	serve(broken)

	bSelf := peer(t, 7003)
	start(t, "b", fast(bSelf))
	a := start(t, "a", fast(nil))

	waitFor(t, "a to find b", func() bool { return a.seen.count(bSelf.ID) >= 1 })
	waitFor(t, "the foreign and broken answers to be ignored", func() bool {
		var foreign, malformed bool
		for _, r := range a.log.records(slog.LevelDebug, "ignoring answer") {
			switch attr(r, "name").String() {
			case "evil._other._tcp.local.":
				foreign = true
			case "broken._lanchat._tcp.local.":
				malformed = true
			}
		}
		return foreign && malformed
	})
	if ids := a.seen.ids(); !slices.Equal(ids, []string{bSelf.ID}) {
		t.Errorf("found %v, want only b %s", ids, bSelf.ID)
	}
}

// TestNoMulticastRoute runs two nodes where joining the mDNS group fails
// with "no such device": each logs one warning, keeps retrying, and once
// a multicast route appears logs that it works again and finds the other.
func TestNoMulticastRoute(t *testing.T) {
	if !inNetns(t, withoutMulticastRoute()) {
		return
	}
	goroutines := runtime.NumGoroutine()
	aSelf, bSelf := peer(t, 7001), peer(t, 7003)
	cfg := fast(aSelf)
	cfg.SlowInterval = 20 * time.Millisecond
	a := start(t, "a", cfg)
	cfg.Self = bSelf
	b := start(t, "b", cfg)

	waitFor(t, "several failed attempts", func() bool {
		return len(a.log.records(slog.LevelDebug, "attempt failed")) >= 5 &&
			len(b.log.records(slog.LevelDebug, "attempt failed")) >= 5
	})
	for _, r := range []*runner{a, b} {
		warns := r.log.records(slog.LevelWarn, "")
		if len(warns) != 1 {
			t.Fatalf("%d warnings, want 1", len(warns))
		}
		if want := "no multicast route on the default interface: mDNS discovery is off; reach peers with --join"; warns[0].Message != want {
			t.Errorf("warning %q, want %q", warns[0].Message, want)
		}
		if err, _ := attr(warns[0], "err").Any().(error); !errors.Is(err, ErrNoMulticast) {
			t.Errorf("warning's error %v does not wrap ErrNoMulticast", err)
		}
	}

	if out, err := exec.Command("ip", "route", "add", "224.0.0.0/4", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("add multicast route: %v: %s", err, out)
	}
	waitFor(t, "a and b to find each other", func() bool {
		return a.seen.count(bSelf.ID) > 0 && b.seen.count(aSelf.ID) > 0
	})
	// Recovery is logged once the first query's window is over.
	const recovered = "mDNS discovery is working again on the default interface"
	waitFor(t, "a and b to log that discovery works again", func() bool {
		return len(a.log.records(slog.LevelInfo, recovered)) > 0 && len(b.log.records(slog.LevelInfo, recovered)) > 0
	})
	for _, r := range []*runner{a, b} {
		r.stop(t)
		if n := len(r.log.records(slog.LevelInfo, recovered)); n != 1 {
			t.Errorf("%d recovery messages, want 1", n)
		}
		if n := len(r.log.records(slog.LevelWarn, "")); n != 1 {
			t.Errorf("%d warnings, want 1", n)
		}
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestCancelDuringQuery checks that Run returns promptly when cancelled in
// the middle of a long query window, and that it cannot run twice at once.
func TestCancelDuringQuery(t *testing.T) {
	if !inNetns(t, withMulticast()) {
		return
	}
	cfg := fast(peer(t, 7001))
	cfg.QuickQueries = -1
	cfg.QueryWindow = time.Hour // capped at MaxQueryWindow
	a := start(t, "a", cfg)
	waitFor(t, "a query to start", func() bool {
		return len(a.log.records(slog.LevelDebug, "query sent")) > 0
	})
	if err := a.m.Run(t.Context(), func(Candidate) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	a.stop(t) // checks the return within about a second
}
