package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// nsPath returns the file of the named namespace.
func nsPath(name string) string { return filepath.Join(netnsDir, name) }

// ownerPID returns the pid encoded in a lab namespace's name
// ("lct-<pid>-<rand>-<role>"), or false if name is not a lab namespace.
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// Sweep removes the namespaces of labs whose creating process is gone,
// leftovers of test runs that crashed or were killed before their cleanup
// ran, after killing any process still inside them. Namespaces of labs of
// running processes are left alone. New calls it; it is safe to call
// concurrently.
func Sweep() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	t, err := lookTools()
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || pidAlive(pid) {
			continue
		}
		if err := removeNS(ctx, t, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}

// removeNS kills every process in the namespace, then deletes it. A
// namespace that is already gone is not an error (a concurrent Sweep may
// have removed it).
func removeNS(ctx context.Context, t tools, name string) error {
	if _, err := os.Stat(nsPath(name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	out, err := runTool(ctx, "", t.ip, "netns", "pids", name)
	if err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				killPID(pid)
			}
		}
	}
	if _, err := runTool(ctx, "", t.ip, "netns", "delete", name); err != nil {
		if _, statErr := os.Stat(nsPath(name)); errors.Is(statErr, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}
