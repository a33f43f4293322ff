package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"lanchat/internal/fsutil"
	"lanchat/mesh"
)

// presence is the state a person set, kept in the data directory so that
// "away" survives a restart and can be set while no node runs.
type presence struct {
	state mesh.State
	text  string
}

type presenceFile struct {
	State      mesh.State `json:"state"`
	StatusText string     `json:"status_text"`
}

const presenceName = "presence.json"

// maxPresenceFile bounds presence.json: a state and a status text of at
// most a few hundred bytes; a larger file is refused, not read.
const maxPresenceFile = 64 << 10

func loadPresence(dir string) (presence, error) {
	b, err := fsutil.ReadFileLimit(filepath.Join(dir, presenceName), maxPresenceFile)
	if errors.Is(err, fs.ErrNotExist) {
		return presence{}, nil
	}
	if err != nil {
		return presence{}, err
	}
	var f presenceFile
	if err := json.Unmarshal(b, &f); err != nil {
		return presence{}, fmt.Errorf("%s: %w", presenceName, err)
	}
	if f.State > mesh.Busy || mesh.ValidStatus(f.StatusText) != nil {
		return presence{}, fmt.Errorf("%s: invalid state or text", presenceName)
	}
	return presence{state: f.State, text: f.StatusText}, nil
}

// SavePresence records the presence the next node on dir starts with.
func SavePresence(dir string, state mesh.State, text string) error {
	if state > mesh.Busy {
		return fmt.Errorf("cannot set state %s", state)
	}
	if err := mesh.ValidStatus(text); err != nil {
		return err
	}
	if err := checkDataDir(dir, nil); err != nil {
		return err
	}
	return savePresence(dir, presence{state: state, text: text})
}

func savePresence(dir string, p presence) error {
	b, err := json.Marshal(presenceFile{State: p.state, StatusText: p.text})
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, presenceName), b)
}
