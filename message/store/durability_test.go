package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"lanchat/message"
)

// childEnv names the database a re-executed test binary writes to until
// it is killed (TestDurabilityChild).
const childEnv = "LANCHAT_STORE_TEST_CHILD_DB"

// TestDurabilityChild is the child of TestKilledProcessLosesNothing: it
// stores messages from several goroutines, and prints "in <id>" or "out
// <id>" on stdout only after AddReceived or AddOutgoing returned nil. It
// runs until killed.
func TestDurabilityChild(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKilledProcessLosesNothing")
	}
	s, err := Open(path, DefaultOptions())
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	var mu sync.Mutex // serialises lines on stdout
	report := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.WriteString(line + "\n") // unbuffered: a write(2) per line
	}
	ctx := context.Background()
	clock := message.NewClock(nil)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				if g%4 == 0 {
					e := alice.msg(t, bob, clock.Now(), fmt.Sprintf("out %d/%d", g, i))
					if err := s.AddOutgoing(ctx, e); err != nil {
						report("error " + err.Error())
						return
					}
					report("out " + e.ID)
					continue
				}
				e := bob.msg(t, alice, clock.Now(), fmt.Sprintf("in %d/%d", g, i))
				if _, err := s.AddReceived(ctx, e); err != nil {
					report("error " + err.Error())
					return
				}
				report("in " + e.ID)
			}
		}()
	}
	select {} // until killed
}

// A process killed at any moment (SIGKILL: no deferred code, no Close)
// loses nothing it had reported stored.
func TestKilledProcessLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	rng := rand.New(rand.NewPCG(5, 6))
	reported := map[string]string{} // id → "in" or "out"
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAfter := 20 + rng.IntN(400)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			dir, id, ok := strings.Cut(line, " ")
			if !ok || (dir != "in" && dir != "out") {
				t.Fatalf("child: %s", line)
			}
			reported[id] = dir
			if n++; n == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child ended with %v, not killed", err)
		}
		t.Logf("round %d: killed after %d reports (%d read in all)", round, killAfter, n)
	}

	s := openAt(t, path, testOptions(t))
	ctx := context.Background()
	missing := 0
	for id, dir := range reported {
		author := bob.id
		if dir == "out" {
			author = alice.id
		}
		r, err := s.Get(ctx, author, id)
		if err != nil {
			missing++
			t.Errorf("%s message %s was reported stored and is lost: %v", dir, id, err)
			continue
		}
		if dir == "out" && r.State != Queued {
			t.Errorf("outgoing %s in state %v", id, r.State)
		}
	}
	n, _ := s.Count(ctx)
	t.Logf("%d reported, %d stored, %d lost", len(reported), n, missing)
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
	peers, err := s.PendingPeers(ctx)
	if err != nil || len(peers) != 1 || peers[0] != bob.id {
		t.Errorf("PendingPeers = %v, %v", peers, err)
	}
}

// fillUntilFull stores messages with big bodies until a write fails, and
// returns the ids stored and the error.
func fillUntilFull(t *testing.T, s *Store, limit int) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	body := strings.Repeat("disk full? ", 300)
	var stored []string
	for i := range limit {
		e := bob.msg(t, alice, at(float64(i)), fmt.Sprint(i, body))
		if _, err := s.AddReceived(ctx, e); err != nil {
			return stored, err
		}
		stored = append(stored, e.ID)
	}
	t.Fatalf("stored %d messages and the disk is not full", limit)
	return nil, nil
}

func checkStored(t *testing.T, s *Store, stored []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range stored {
		if _, err := s.Get(ctx, bob.id, id); err != nil {
			t.Fatalf("message stored before the disk filled is gone: %v", err)
		}
	}
	if n, err := s.Count(ctx); err != nil || n != len(stored) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(stored))
	}
}

// A database that may not grow (max_page_count) fails writes with
// ErrDiskFull and keeps what it had.
func TestDiskFullPageLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	opt := testOptions(t)
	opt.maxPages = 200
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := fillUntilFull(t, s, 10000)
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write to a full database: %v, want ErrDiskFull", err)
	}
	t.Logf("%d stored, then: %v", len(stored), err)
	checkStored(t, s, stored)
	if err := s.Check(context.Background()); err != nil {
		t.Error(err)
	}
	s.Close()

	s = openAt(t, path, testOptions(t)) // room again
	checkStored(t, s, stored)
	if _, err := s.AddReceived(context.Background(), bob.msg(t, alice, at(1e6), "space again")); err != nil {
		t.Errorf("after the disk has room again: %v", err)
	}
}
