package netlab

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// platformSupported reports nil: labs run on Linux.
func platformSupported() error { return nil }

// setns moves the calling OS thread into the network namespace open as f.
func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// childSysProcAttr makes a child die with the test process, so a test killed
// before its cleanup (timeout, SIGKILL) leaves no program behind in a lab.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// pidAlive reports whether a process with the pid exists.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killPID sends SIGKILL to the process.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
