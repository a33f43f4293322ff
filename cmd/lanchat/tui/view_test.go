package tui

import (
	"testing"
)

func TestViewFirstLook(t *testing.T) {
	h := newHarness(t, newFake(), 80, 24)
	golden(t, "start-80x24", h.screen())
	t.Log("\n" + h.plain())
}
