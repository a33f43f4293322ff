package netlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it returns nil, and fails the test with cond's
// last error if that has not happened within timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reachWait is how long a datagram may take to cross the lab; if it has not
// arrived by then, the hosts cannot reach each other.
const reachWait = 400 * time.Millisecond

// udpReach reports whether a datagram sent from one host reaches the other.
// It sends a few, and gives up after reachWait.
func udpReach(from, to *Host) (bool, error) {
	pc, err := to.ListenPacket("udp4", netip.AddrPortFrom(to.Addr, 0).String())
	if err != nil {
		return false, fmt.Errorf("listen on %s: %w", to, err)
	}
	defer pc.Close()
	c, err := from.Dial(context.Background(), "udp4", pc.LocalAddr().String())
	if err != nil {
		return false, fmt.Errorf("dial from %s: %w", from, err)
	}
	defer c.Close()

	got := make(chan bool, 1)
	go func() {
		buf := make([]byte, 64)
		_ = pc.SetReadDeadline(time.Now().Add(reachWait))
		n, _, err := pc.ReadFrom(buf)
		got <- err == nil && string(buf[:n]) == "hello "+to.Name
	}()
	// Three tries a little apart: the first may wait for ARP.
	for range 3 {
		// A send error (the host unplugged) is just no delivery.
		_, _ = c.Write([]byte("hello " + to.Name))
		select {
		case ok := <-got:
			return ok, nil
		case <-time.After(reachWait / 4):
		}
	}
	return <-got, nil
}

// tcpExchange connects from one host to the other and echoes a line.
func tcpExchange(from, to *Host) error {
	ln, err := to.Listen("tcp4", netip.AddrPortFrom(to.Addr, 0).String())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", to, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "echo "+line)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dial %s from %s: %w", to, from, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping from "+from.Name+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read echo from %s: %w", to, err)
	}
	if want := "echo ping from " + from.Name + "\n"; line != want {
		return fmt.Errorf("echo from %s = %q, want %q", to, line, want)
	}
	return nil
}

// reachability returns, for every ordered pair of hosts, whether a datagram
// gets from the first to the second ("h1>h2"). The pairs are tried
// concurrently.
func reachability(t testing.TB, hosts []*Host) map[string]bool {
	t.Helper()
	var mu sync.Mutex // guards m and errs
	m := make(map[string]bool)
	var errs []error
	var wg sync.WaitGroup
	for _, a := range hosts {
		for _, b := range hosts {
			if a == b {
				continue
			}
			wg.Go(func() {
				ok, err := udpReach(a, b)
				mu.Lock()
				m[a.Name+">"+b.Name] = ok
				errs = append(errs, err)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return m
}

// wantReach builds the expected reachability of hosts from the pairs that are
// cut: every pair is reachable but the listed ones.
func wantReach(hosts []*Host, cut ...string) map[string]bool {
	m := make(map[string]bool)
	for _, a := range hosts {
		for _, b := range hosts {
			if a != b {
				m[a.Name+">"+b.Name] = !slices.Contains(cut, a.Name+">"+b.Name)
			}
		}
	}
	return m
}

func diffReach(got, want map[string]bool) error {
	var bad []string
	for k, w := range want {
		if got[k] != w {
			bad = append(bad, fmt.Sprintf("%s reach=%v want %v", k, got[k], w))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func TestHostsReachEachOther(t *testing.T) {
	t.Parallel()
	lab := New(t, 3)
	for i, h := range lab.Hosts {
		if want := fmt.Sprintf("h%d", i+1); h.Name != want {
			t.Errorf("host %d name = %q, want %q", i, h.Name, want)
		}
		if want := netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 2)}); h.Addr != want {
			t.Errorf("%s addr = %v, want %v", h.Name, h.Addr, want)
		}
	}
	if err := diffReach(reachability(t, lab.Hosts), wantReach(lab.Hosts)); err != nil {
		t.Errorf("udp: %v", err)
	}
	for _, a := range lab.Hosts {
		for _, b := range lab.Hosts {
			if a != b {
				if err := tcpExchange(a, b); err != nil {
					t.Errorf("tcp: %v", err)
				}
			}
		}
	}
}

func TestCommandRunsInHost(t *testing.T) {
	t.Parallel()
	lab := New(t, 2)
	for _, h := range lab.Hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := h.Command(ctx, "ip", "-o", "-4", "addr", "show").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: ip addr: %v: %s", h, err, out)
		}
		if !strings.Contains(string(out), " eth0 ") || !strings.Contains(string(out), h.Addr.String()+"/24") {
			t.Errorf("%s: ip addr shows\n%s\nwant eth0 with %s/24", h, out, h.Addr)
		}
		for _, other := range lab.Hosts {
			if other != h && strings.Contains(string(out), other.Addr.String()+"/") {
				t.Errorf("%s: sees %s's address:\n%s", h, other, out)
			}
		}
	}
}

func TestMulticastReachesAllHosts(t *testing.T) {
	t.Parallel()
	lab := New(t, 4)
	for _, tc := range []struct {
		name  string
		group string
	}{
		{"mdns group", "224.0.0.251:5353"},
		{"site-local group", "239.255.77.77:7777"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gaddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.group))
			sender := lab.Hosts[0]
			rec := newMulticastRecorder(t, lab.Hosts[1:], gaddr)
			c, err := sender.Dial(context.Background(), "udp4", tc.group)
			if err != nil {
				t.Fatalf("dial %s from %s: %v", tc.group, sender, err)
			}
			defer c.Close()
			waitFor(t, 5*time.Second, func() error {
				if _, err := c.Write([]byte("from " + sender.Name)); err != nil {
					return fmt.Errorf("send: %w", err)
				}
				return rec.receivedAll("from " + sender.Name)
			})
		})
	}
}

// multicastRecorder collects what hosts receive on a multicast group.
type multicastRecorder struct {
	hosts []*Host
	mu    sync.Mutex          // guards got
	got   map[string][]string // host name → payloads received
}

func newMulticastRecorder(t testing.TB, hosts []*Host, gaddr *net.UDPAddr) *multicastRecorder {
	t.Helper()
	r := &multicastRecorder{hosts: hosts, got: make(map[string][]string)}
	for _, h := range hosts {
		c, err := h.ListenMulticastUDP("udp4", gaddr)
		if err != nil {
			t.Fatalf("join %v on %s: %v", gaddr, h, err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				r.mu.Lock()
				r.got[h.Name] = append(r.got[h.Name], string(buf[:n]))
				r.mu.Unlock()
			}
		}()
	}
	return r
}

// receivedAll returns nil once every host has received payload.
func (r *multicastRecorder) receivedAll(payload string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing []string
	for _, h := range r.hosts {
		if !slices.Contains(r.got[h.Name], payload) {
			missing = append(missing, h.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%q not received by %v", payload, missing)
	}
	return nil
}

// received returns the hosts that received payload.
func (r *multicastRecorder) received(payload string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, h := range r.hosts {
		if slices.Contains(r.got[h.Name], payload) {
			names = append(names, h.Name)
		}
	}
	return names
}

func TestUnplugStopsTrafficAndReplugRestoresIt(t *testing.T) {
	t.Parallel()
	lab := New(t, 3)
	h3 := lab.Hosts[2]

	if err := h3.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := diffReach(reachability(t, lab.Hosts), wantReach(lab.Hosts, "h1>h3", "h2>h3", "h3>h1", "h3>h2")); err != nil {
		t.Errorf("unplugged: %v", err)
	}

	if err := h3.Replug(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		return diffReach(reachability(t, lab.Hosts), wantReach(lab.Hosts))
	})
	if err := tcpExchange(lab.Hosts[0], h3); err != nil {
		t.Errorf("after replug: %v", err)
	}
}

func TestDropPercent(t *testing.T) {
	t.Parallel()
	lab := New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	// Few enough that they fit in the receiver's socket buffer even if it
	// does not read until the end (a slow -race run).
	const sent = 200
	for _, tc := range []struct {
		name         string
		dropper      *Host // the host that drops
		percent      int
		wantMin      int // datagrams delivered, of sent
		wantMax      int
		clearByDrop0 bool // clear with DropPercent(0) instead of ClearDrop
	}{
		{name: "receiver drops all", dropper: h2, percent: 100, wantMin: 0, wantMax: 0},
		{name: "sender drops all", dropper: h1, percent: 100, wantMin: 0, wantMax: 0},
		// Binomial(200, 0.5): 100 ± 7, so these bounds are ±5.6 sd.
		{name: "receiver drops half", dropper: h2, percent: 50, wantMin: 60, wantMax: 140},
		{name: "cleared by zero percent", dropper: h2, percent: 50, wantMin: 60, wantMax: 140, clearByDrop0: true},
		{name: "nothing dropped", dropper: h2, percent: 0, wantMin: sent, wantMax: sent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.dropper.DropPercent(tc.percent); err != nil {
				t.Fatal(err)
			}
			got := countDelivered(t, h1, h2, sent, func() error {
				if tc.clearByDrop0 {
					return tc.dropper.DropPercent(0)
				}
				return tc.dropper.ClearDrop()
			})
			if got < tc.wantMin || got > tc.wantMax {
				t.Errorf("%d of %d datagrams delivered, want %d to %d", got, sent, tc.wantMin, tc.wantMax)
			}
		})
	}
}

// countDelivered sends n numbered datagrams from one host to the other,
// calls clear (which must stop any dropping), then sends an end marker until
// it arrives: datagrams between two hosts on one bridge stay in order, so
// once the marker is in, every datagram that was not dropped is in too.
func countDelivered(t testing.TB, from, to *Host, n int, clear func() error) int {
	t.Helper()
	pc, err := to.ListenPacket("udp4", netip.AddrPortFrom(to.Addr, 0).String())
	if err != nil {
		t.Fatalf("listen on %s: %v", to, err)
	}
	defer pc.Close()
	if err := pc.(*net.UDPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	c, err := from.Dial(context.Background(), "udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	defer c.Close()

	var mu sync.Mutex // guards seen and end
	seen := make(map[string]bool)
	end := false
	go func() {
		buf := make([]byte, 64)
		for {
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			if s := string(buf[:k]); s == "end" {
				end = true
			} else {
				seen[s] = true
			}
			mu.Unlock()
		}
	}()
	for i := range n {
		// A drop in the sender's output hook shows as a send error.
		_, _ = c.Write([]byte(strconv.Itoa(i)))
	}
	if err := clear(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		_, _ = c.Write([]byte("end"))
		mu.Lock()
		defer mu.Unlock()
		if !end {
			return errors.New("end marker not received")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	return len(seen)
}

func TestPartitionAndHeal(t *testing.T) {
	t.Parallel()
	lab := New(t, 4)
	h := lab.Hosts
	for _, tc := range []struct {
		name   string
		groups [][]*Host
		cut    []string
	}{
		{
			name:   "two halves",
			groups: [][]*Host{{h[0], h[1]}, {h[2], h[3]}},
			cut:    []string{"h1>h3", "h1>h4", "h2>h3", "h2>h4", "h3>h1", "h3>h2", "h4>h1", "h4>h2"},
		},
		{
			name:   "one host alone",
			groups: [][]*Host{{h[0]}, {h[1], h[2], h[3]}},
			cut:    []string{"h1>h2", "h1>h3", "h1>h4", "h2>h1", "h3>h1", "h4>h1"},
		},
		{
			name:   "hosts in no group reach everyone",
			groups: [][]*Host{{h[0]}, {h[1]}},
			cut:    []string{"h1>h2", "h2>h1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := lab.Partition(tc.groups...); err != nil {
				t.Fatal(err)
			}
			if err := diffReach(reachability(t, h), wantReach(h, tc.cut...)); err != nil {
				t.Errorf("partitioned: %v", err)
			}

			// Multicast from h1 reaches exactly the hosts h1 reaches.
			gaddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("224.0.0.251:5353"))
			rec := newMulticastRecorder(t, h[1:], gaddr)
			c, err := h[0].Dial(context.Background(), "udp4", gaddr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var want []string
			for _, o := range h[1:] {
				if !slices.Contains(tc.cut, "h1>"+o.Name) {
					want = append(want, o.Name)
				}
			}
			payload := "partitioned " + tc.name
			waitFor(t, 5*time.Second, func() error {
				_, _ = c.Write([]byte(payload))
				if got := rec.received(payload); !slices.Equal(got, want) {
					return fmt.Errorf("multicast from h1 received by %v, want %v", got, want)
				}
				return nil
			})
			// Those cut off stay cut off.
			time.Sleep(reachWait)
			if got := rec.received(payload); !slices.Equal(got, want) {
				t.Errorf("multicast from h1 received by %v, want %v", got, want)
			}

			if err := lab.Heal(); err != nil {
				t.Fatal(err)
			}
			// A pair's neighbour entries may have failed while it was cut
			// (ARP went unanswered), and are resolved again on the next
			// packets: under load that takes more than one probe's wait.
			waitFor(t, 5*time.Second, func() error {
				if err := diffReach(reachability(t, h), wantReach(h)); err != nil {
					return fmt.Errorf("healed: %w", err)
				}
				return nil
			})
			waitFor(t, 5*time.Second, func() error {
				_, _ = c.Write([]byte("healed " + tc.name))
				return rec.receivedAll("healed " + tc.name)
			})
		})
	}
}

func TestPartitionRejectsBadGroups(t *testing.T) {
	t.Parallel()
	lab := New(t, 2)
	other := New(t, 1)
	for _, tc := range []struct {
		name   string
		groups [][]*Host
	}{
		{"host in two groups", [][]*Host{{lab.Hosts[0]}, {lab.Hosts[0], lab.Hosts[1]}}},
		{"host of another lab", [][]*Host{{lab.Hosts[0]}, {other.Hosts[0]}}},
		{"nil host", [][]*Host{{lab.Hosts[0]}, {nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := lab.Partition(tc.groups...); err == nil {
				t.Errorf("Partition accepted %s", tc.name)
			}
		})
	}
}

// rootLinks lists the interfaces of the test process's own namespace.
func rootLinks(t testing.TB) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}

// labNamespaces lists the namespaces whose name starts with prefix.
func labNamespaces(t testing.TB, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestCleanupRemovesEverything(t *testing.T) {
	Require(t)
	// Not parallel: it compares the machine's own interfaces before and
	// after, and other tests' labs must not come and go meanwhile (they do
	// not add interfaces there, but this test is what checks that).
	before := rootLinks(t)
	var id string
	sleeperDone := make(chan error, 1)
	t.Run("lab", func(t *testing.T) {
		lab := New(t, 3)
		id = lab.ID
		if got := labNamespaces(t, id); len(got) != 4 {
			t.Errorf("lab namespaces = %v, want a bridge and 3 hosts", got)
		}
		// A program left running in a host does not keep the lab alive.
		cmd := lab.Hosts[0].Command(context.Background(), "sleep", "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { sleeperDone <- cmd.Wait() }()
		if err := lab.Hosts[1].DropPercent(10); err != nil {
			t.Fatal(err)
		}
		if err := lab.Partition(lab.Hosts[:1], lab.Hosts[1:]); err != nil {
			t.Fatal(err)
		}
	})
	if id == "" {
		t.Fatal("lab was not built")
	}
	if got := labNamespaces(t, id); len(got) > 0 {
		t.Errorf("namespaces left behind: %v", got)
	}
	if after := rootLinks(t); !slices.Equal(before, after) {
		t.Errorf("interfaces of the machine's namespace: before %v, after %v", before, after)
	}
	select {
	case <-sleeperDone:
	case <-time.After(10 * time.Second):
		t.Errorf("program in a host still running after the lab closed")
	}
}

// The helper process: when NETLAB_HELPER is set, TestHelperProcess builds a
// lab, prints its ID, starts a program in a host, and then panics or hangs,
// as the variable says.
const helperEnv = "NETLAB_HELPER"

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	lab := New(t, 2)
	cmd := lab.Hosts[0].Command(context.Background(), "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("lab=%s sleeper=%d\n", lab.ID, cmd.Process.Pid)
	switch mode {
	case "panic":
		panic("helper panics on purpose")
	case "hang":
		select {}
	}
}

// startHelper runs this test binary as a helper process in the given mode and
// returns it with the lab ID and sleeper pid it printed.
func startHelper(t *testing.T, mode string) (*exec.Cmd, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("helper stderr:\n%s", stderr.String())
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("helper exited before building its lab")
			}
			var id string
			var pid int
			if n, _ := fmt.Sscanf(line, "lab=%s sleeper=%d", &id, &pid); n == 2 {
				go func() {
					for l := range lines {
						stderr.Write([]byte(l + "\n"))
					}
				}()
				return cmd, id, pid
			}
			stderr.Write([]byte(line + "\n"))
		case <-timeout:
			t.Fatal("helper did not report its lab")
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestPanickingTestCleansUp(t *testing.T) {
	Require(t)
	t.Parallel()
	cmd, id, sleeper := startHelper(t, "panic")
	err := cmd.Wait()
	if err == nil {
		t.Fatal("helper did not fail")
	}
	if got := labNamespaces(t, id); len(got) > 0 {
		t.Errorf("namespaces left behind by a panicking test: %v", got)
	}
	waitFor(t, 10*time.Second, func() error {
		if pidAlive(sleeper) {
			return fmt.Errorf("program %d started in the lab still runs", sleeper)
		}
		return nil
	})
}

func TestSweepRemovesCrashedRunsLeftovers(t *testing.T) {
	Require(t)
	t.Parallel()
	cmd, id, sleeper := startHelper(t, "hang")
	if got := labNamespaces(t, id); len(got) != 3 {
		t.Fatalf("helper's lab namespaces = %v, want 3", got)
	}
	// A running process's lab is not swept.
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if got := labNamespaces(t, id); len(got) != 3 {
		t.Fatalf("Sweep removed a live lab's namespaces: left %v", got)
	}
	// Crash it: no cleanup runs.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, 10*time.Second, func() error {
		if pidAlive(sleeper) {
			return fmt.Errorf("program %d started in the crashed lab still runs", sleeper)
		}
		return nil
	})
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if got := labNamespaces(t, id); len(got) > 0 {
		t.Errorf("namespaces left after Sweep: %v", got)
	}
}

func TestOwnerPID(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ns     string
		want   int
		wantOK bool
	}{
		{"bridge", "lct-1234-a1b2c3-br", 1234, true},
		{"host", "lct-99-a1b2c3-h10", 99, true},
		{"other prefix", "foo-1234-a1b2c3-br", 0, false},
		{"no pid", "lct--a1b2c3-br", 0, false},
		{"pid not a number", "lct-x1-a1b2c3-br", 0, false},
		{"too few parts", "lct-1234-br", 0, false},
		{"too many parts", "lct-1234-a1-b2-br", 0, false},
		{"zero pid", "lct-0-a1b2c3-br", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ownerPID(tc.ns)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", tc.ns, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestNewLabIDIsOwned(t *testing.T) {
	id := newLabID()
	pid, ok := ownerPID(id + "-h1")
	if !ok || pid != os.Getpid() {
		t.Errorf("ownerPID(%q) = %d, %v; want own pid %d", id+"-h1", pid, ok, os.Getpid())
	}
	if len(id+"-h200") > 40 {
		t.Errorf("namespace name %q too long", id+"-h200")
	}
}

func TestScripts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  func() (string, error)
		want    []string // lines that must appear
		wantErr bool
	}{
		{
			name:   "drop 30",
			script: func() (string, error) { return dropScript(30) },
			want: []string{
				"delete table inet netlab_drop",
				`iifname "eth0" numgen random mod 100 < 30 drop`,
				`oifname "eth0" numgen random mod 100 < 30 drop`,
			},
		},
		{
			name:   "drop 100 drops all",
			script: func() (string, error) { return dropScript(100) },
			want:   []string{`iifname "eth0" drop`, `oifname "eth0" drop`},
		},
		{
			name:   "drop 0 only deletes",
			script: func() (string, error) { return dropScript(0) },
			want:   []string{"table inet netlab_drop", "delete table inet netlab_drop"},
		},
		{name: "drop 101", script: func() (string, error) { return dropScript(101) }, wantErr: true},
		{name: "drop -1", script: func() (string, error) { return dropScript(-1) }, wantErr: true},
		{
			name: "partition three groups",
			script: func() (string, error) {
				return partitionScript([][]string{{"p1"}, {"p2", "p3"}, {"p4"}}), nil
			},
			want: []string{
				"delete table bridge netlab_partition",
				`iifname { "p1" } oifname { "p2", "p3", "p4" } drop`,
				`iifname { "p2", "p3" } oifname { "p1", "p4" } drop`,
				`iifname { "p4" } oifname { "p1", "p2", "p3" } drop`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.script()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; script:\n%s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("script lacks line %q:\n%s", w, got)
				}
			}
		})
	}
}

// recordingTB records Fatalf and Skipf instead of acting on them.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func (r *recordingTB) Skipf(format string, args ...any) { r.skip = fmt.Sprintf(format, args...) }

func TestRequireSkipsOrFailsInCI(t *testing.T) {
	why := errors.New("needs root (network namespaces)")
	for _, tc := range []struct {
		name      string
		ci        string
		err       error
		wantFatal bool
		wantSkip  bool
	}{
		{name: "can run", ci: "", err: nil},
		{name: "can run in CI", ci: "true", err: nil},
		{name: "cannot run: skip", ci: "", err: why, wantSkip: true},
		{name: "cannot run, CI=false: skip", ci: "false", err: why, wantSkip: true},
		{name: "cannot run in CI: fail", ci: "true", err: why, wantFatal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recordingTB{TB: t}
			require(r, tc.err)
			if got := r.fatal != ""; got != tc.wantFatal {
				t.Errorf("failed = %v (%q), want %v", got, r.fatal, tc.wantFatal)
			}
			if got := r.skip != ""; got != tc.wantSkip {
				t.Errorf("skipped = %v (%q), want %v", got, r.skip, tc.wantSkip)
			}
			for _, msg := range []string{r.fatal, r.skip} {
				if msg != "" && !strings.Contains(msg, why.Error()) {
					t.Errorf("message %q does not give the reason", msg)
				}
			}
		})
	}
}

func TestCountPackets(t *testing.T) {
	if s := countScript(); !strings.Contains(s, `iifname "eth0" counter`+"\n") || !strings.Contains(s, "delete table inet netlab_count\n") {
		t.Fatalf("count script:\n%s", s)
	}
	lab := New(t, 2)
	a, b := lab.Hosts[0], lab.Hosts[1]
	if err := b.CountPackets(); err != nil {
		t.Fatal(err)
	}
	const n = 20
	if got := countDelivered(t, a, b, n, func() error { return nil }); got != n {
		t.Fatalf("%d of %d datagrams delivered", got, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := a.Dial(ctx, "tcp", netip.AddrPortFrom(b.Addr, 9).String()); err == nil {
		c.Close() // refused is expected; the SYN arrived either way
	}
	c, err := b.Counted()
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets < n+1 || c.SYNs != 1 || c.TCP != 1 || c.UDP < n || c.MDNS != 0 || c.Bytes < c.Packets*20 {
		t.Fatalf("counted %+v after %d datagrams and one connection attempt", c, n)
	}
}
