package node

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"lanchat/message/store"
)

// HistoryFile is the name of the history database in the data directory.
const HistoryFile = "history.db"

func openStore(dataDir string, log *slog.Logger) (*store.Store, error) {
	path := filepath.Join(dataDir, HistoryFile)
	opt := store.DefaultOptions()
	opt.Logger = log.With("part", "store")
	opt.Synchronous = "NORMAL"
	st, err := store.Open(path, opt)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	return st, nil
}
