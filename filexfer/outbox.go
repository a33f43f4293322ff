package filexfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"lanchat/internal/fsutil"
)

// The outgoing offers not yet finished are kept in a small JSON file
// (ServiceConfig.OutboxPath), so an offer to someone offline survives a
// restart of the sender: what to send, to whom, under which transfer id
// (so the recipient resumes it). The file is rewritten whole on every
// change of that list, atomically.

// maxOutboxFile bounds the file read back, and maxOutbox the offers in it.
const (
	maxOutboxFile = 4 << 20
	maxOutbox     = 1000
)

type outboxEntry struct {
	ID      string    `json:"transfer_id"` // TransferID.String()
	Peer    string    `json:"peer"`
	Paths   []string  `json:"paths"`
	Created time.Time `json:"created"`
}

// saveOutbox writes the unfinished outgoing offers. Called with s.mu held.
func (s *Service) saveOutboxLocked() {
	if s.cfg.OutboxPath == "" {
		return
	}
	var out []outboxEntry
	for _, id := range s.order {
		x := s.xfers[id]
		if x.t.Incoming || x.src == nil || (x.t.State != StateWaiting && x.t.State != StateActive) {
			continue
		}
		out = append(out, outboxEntry{ID: x.src.ID.String(), Peer: x.t.Peer, Paths: x.paths, Created: x.created})
	}
	b, err := json.Marshal(out)
	if err == nil {
		err = fsutil.WriteFileAtomic(s.cfg.OutboxPath, b)
	}
	if err != nil {
		s.log.Warn("cannot keep the outgoing offers for a restart", "path", s.cfg.OutboxPath, "err", err)
	}
}

// loadOutbox takes the offers an earlier run left unfinished back in, as
// waiting. One whose files are gone is listed as failed.
func (s *Service) loadOutbox() error {
	if s.cfg.OutboxPath == "" {
		return nil
	}
	b, err := fsutil.ReadFileLimit(s.cfg.OutboxPath, maxOutboxFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var in []outboxEntry
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("%s: %w", s.cfg.OutboxPath, err)
	}
	if len(in) > maxOutbox {
		in = in[:maxOutbox]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range in {
		tid, err := ParseTransferID(e.ID)
		if err != nil {
			continue
		}
		x := &xfer{paths: e.Paths, created: e.Created}
		src, err := NewSource(e.Paths, s.cfg.Receive.MaxEntries)
		if err != nil {
			x.t = Transfer{ID: transferKey(s.cfg.Self, tid), Peer: e.Peer, State: StateFailed,
				Error: "the files are gone: " + err.Error(), Updated: time.Now()}
			s.addLocked(x)
			continue
		}
		src.ID = tid
		x.src = src
		x.t = Transfer{ID: transferKey(s.cfg.Self, tid), Peer: e.Peer, Names: topNames(src.Entries), Files: src.Files(),
			Total: src.Total(), State: StateWaiting, Skipped: src.Skipped, Updated: time.Now()}
		s.addLocked(x)
	}
	return nil
}
