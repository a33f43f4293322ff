package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// envNetns names the test a re-executed test binary is to run inside a
// network namespace made for it.
const envNetns = "LANCHAT_DISCOVERY_TEST_IN_NETNS"

// withMulticast sets a namespace up with a multicast route on lo: all
// mDNS traffic of the test stays inside its namespace. Every namespace
// starts with only lo, down.
func withMulticast() [][]string {
	return append(withoutMulticastRoute(), []string{"route", "add", "224.0.0.0/4", "dev", "lo"})
}

// withoutMulticastRoute sets a namespace up where joining a multicast group
// fails with "no such device".
func withoutMulticastRoute() [][]string {
	return [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "lo", "multicast", "on"},
	}
}

// skipOrFail skips the test, or fails it when the CI environment variable
// is "true": on CI the namespace tests must run.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// inNetns runs the calling test in a network namespace of its own. In the
// test process it creates the namespace, sets it up with "ip" commands,
// re-executes the test binary inside it for this test alone, reports its
// output and result, deletes the namespace and returns false: the caller
// returns at once. In the re-executed binary it returns true: the caller
// is inside the namespace and runs its body.
func inNetns(t *testing.T, setup [][]string) bool {
	t.Helper()
	if os.Getenv(envNetns) == t.Name() {
		return true
	}
	if os.Getenv(envNetns) != "" {
		t.Skip("not the test this namespace was made for")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "network namespace tests need root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		skipOrFail(t, "network namespace tests need the ip command: "+err.Error())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(t.Name()))
	ns := fmt.Sprintf("lcdisc-%d-%s", os.Getpid(), hex.EncodeToString(sum[:4]))
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		skipOrFail(t, fmt.Sprintf("cannot create a network namespace: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("delete network namespace %s: %v: %s", ns, err, out)
		}
	})
	for _, args := range setup {
		args = append([]string{"-n", ns}, args...)
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, exe,
		"-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=50s")
	// A race-enabled binary sleeps a second at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), envNetns+"="+t.Name(), "GORACE="+gorace)
	out, err := cmd.CombinedOutput()
	t.Logf("in network namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("test in network namespace: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatal("test in network namespace did not pass")
	}
	return false
}

// waitFor waits until cond holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logRecorder is a slog.Handler that writes to t.Log and keeps every record
// for the test to look at.
type logRecorder struct {
	t    *testing.T
	name string // prefixed to every line

	mu   sync.Mutex // guards recs
	recs []slog.Record
}

func newLogger(t *testing.T, name string) (*slog.Logger, *logRecorder) {
	h := &logRecorder{t: t, name: name}
	return slog.New(h), h
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", h.name, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.t.Log(b.String())
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// records returns the records of level whose message contains substr.
func (h *logRecorder) records(level slog.Level, substr string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Level == level && strings.Contains(r.Message, substr) {
			out = append(out, r)
		}
	}
	return out
}

// attr returns the value of the attribute key of r.
func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// sightings collects what a found callback is given.
type sightings struct {
	mu   sync.Mutex // guards all
	all  []Candidate
	when []time.Time
}

func (s *sightings) found(c Candidate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, c)
	s.when = append(s.when, time.Now())
}

// count returns how many times id was found.
func (s *sightings) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.all {
		if c.ID == id {
			n++
		}
	}
	return n
}

// first returns the first candidate with id and when it was found.
func (s *sightings) first(id string) (Candidate, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.all {
		if c.ID == id {
			return c, s.when[i], true
		}
	}
	return Candidate{}, time.Time{}, false
}

// ids returns every id found, once each.
func (s *sightings) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, c := range s.all {
		if !seen[c.ID] {
			seen[c.ID] = true
			out = append(out, c.ID)
		}
	}
	return out
}

// runner runs one MDNS until the test stops it.
type runner struct {
	m      *MDNS
	seen   *sightings
	log    *logRecorder
	cancel context.CancelFunc
	done   chan error // receives Run's result
}

// start makes an MDNS from cfg (with a test logger named name) and runs it.
// The test's cleanup stops it if the test did not.
func start(t *testing.T, name string, cfg Config) *runner {
	t.Helper()
	logger, rec := newLogger(t, name)
	cfg.Logger = logger
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{m: m, seen: &sightings{}, log: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx, r.seen.found) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and checks that it returns nil within about a second.
// Stopping twice is harmless.
func (r *runner) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	begin := time.Now()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		if d := time.Since(begin); d > 1200*time.Millisecond {
			t.Errorf("Run took %v to return after cancel", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
