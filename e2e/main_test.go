//go:build linux

package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"lanchat/internal/netlab"
)

// suite is what TestMain prepares for every test: written once before any
// test runs, read-only afterwards.
var suite struct {
	bin      string // the lanchat binary under test
	buildErr error  // why there is none
	home     string // HOME for every process the tests start
	dir      string // a short directory for data directories
}

// defaultParallel is how many tests run at once unless -test.parallel says
// otherwise. The tests spend their time waiting for the nodes' timers
// (failure detection, rejoin), not computing, so they overlap well even on
// two cores.
const defaultParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", fmt.Sprint(defaultParallel))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := netlab.Available(); err != nil {
		// Every test skips (or fails, in CI) on its own, with the reason.
		suite.buildErr = err
		return m.Run()
	}
	// Leftovers of crashed runs, before the first lab.
	if err := netlab.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	}
	// Short: data directories hold the control socket, and a Unix socket
	// path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "lce2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	suite.dir = dir
	suite.home = filepath.Join(dir, "home")
	if err := os.Mkdir(suite.home, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	suite.bin, suite.buildErr = buildBinary(dir)
	return m.Run()
}

// buildBinary builds ./cmd/lanchat into dir, or returns the prebuilt binary
// named by LANCHAT_E2E_BINARY.
func buildBinary(dir string) (string, error) {
	if p := os.Getenv("LANCHAT_E2E_BINARY"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("LANCHAT_E2E_BINARY: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("LANCHAT_E2E_BINARY: %w", err)
		}
		return abs, nil
	}
	// go test puts its own GOROOT/bin first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find the go command: %w", err)
	}
	bin := filepath.Join(dir, "lanchat")
	args := []string{"build", "-o", bin}
	if os.Getenv("LANCHAT_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, "./cmd/lanchat")...)
	cmd.Dir = ".." // the module root: tests run in e2e/
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/lanchat: %w\n%s", err, out)
	}
	return bin, nil
}

// lanchatBin returns the lanchat binary, or fails the test with why there is
// none. Call it after netlab.New, which skips where labs cannot run.
func lanchatBin(t testing.TB) string {
	t.Helper()
	if suite.buildErr != nil {
		t.Fatalf("no lanchat binary: %v", suite.buildErr)
	}
	return suite.bin
}

// newDataDir returns a new, empty data directory, removed when the test
// ends. Unlike t.TempDir its path stays short whatever the test's name.
func newDataDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp(suite.dir, "d")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
