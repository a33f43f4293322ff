package testutil

import (
	"log/slog"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTrue(t *testing.T) {
	start := time.Now()
	WaitFor(t, "a condition", time.Second, func() bool { return time.Since(start) > 20*time.Millisecond })
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("returned before the condition held")
	}
}

func TestLoggerIsSilentAfterTheTest(t *testing.T) {
	var log *slog.Logger
	t.Run("inner", func(t *testing.T) { log = Logger(t, slog.LevelInfo); log.Info("during") })
	log.Info("after the test ended") // would panic if it reached t.Log
}
