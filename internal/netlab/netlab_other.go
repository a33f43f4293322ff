//go:build !linux

package netlab

import (
	"errors"
	"os"
	"syscall"
)

var errNotLinux = errors.New("needs Linux network namespaces")

func platformSupported() error { return errNotLinux }

func setns(*os.File) error { return errNotLinux }

func childSysProcAttr() *syscall.SysProcAttr { return nil }

// pidAlive says yes: without Linux there are no labs to sweep.
func pidAlive(int) bool { return true }

func killPID(int) {}
