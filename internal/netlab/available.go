package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Capabilities a lab needs, as bit numbers in /proc/self/status CapEff.
const (
	capNetAdmin = 12 // interfaces, addresses, routes, nftables
	capSysAdmin = 21 // creating and entering namespaces
)

// Available returns why this machine cannot run a lab, or nil if it can: a
// lab needs Linux, root with CAP_SYS_ADMIN and CAP_NET_ADMIN, and the ip
// (iproute2) and nft (nftables) commands.
func Available() error {
	if err := platformSupported(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	caps, err := effectiveCaps()
	if err != nil {
		return err
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSysAdmin, "CAP_SYS_ADMIN"}, {capNetAdmin, "CAP_NET_ADMIN"}} {
		if caps&(1<<c.bit) == 0 {
			return fmt.Errorf("needs %s", c.name)
		}
	}
	if _, err := lookTools(); err != nil {
		return err
	}
	return nil
}

// Require skips the test, with the reason, when the machine cannot run a
// lab; when the environment has CI=true it fails the test instead, since a
// test that cannot run in CI is a failure.
func Require(tb testing.TB) {
	tb.Helper()
	require(tb, Available())
}

// require skips or fails tb for err, the reason a lab cannot run.
func require(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("netlab: cannot run here, and CI=true: %v", err)
		return
	}
	tb.Skipf("netlab: cannot run here: %v", err)
}

// effectiveCaps reads the process's effective capability set.
func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse capabilities %q: %w", v, err)
			}
			return caps, nil
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}

// lookTools finds ip and nft in PATH or, for environments whose PATH lacks
// the sbin directories, in /usr/sbin and /sbin.
func lookTools() (tools, error) {
	var t tools
	for _, x := range []struct {
		name, pkg string
		dst       *string
	}{{"ip", "iproute2", &t.ip}, {"nft", "nftables", &t.nft}} {
		p, err := lookPath(x.name)
		if err != nil {
			return tools{}, fmt.Errorf("needs the %s command (apt-get install %s): %w", x.name, x.pkg, err)
		}
		*x.dst = p
	}
	return t, nil
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
