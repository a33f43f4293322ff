//go:build !linux

package store

// lowOnSpace cannot tell on this system.
func lowOnSpace(string) bool { return false }
