package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
)

// fileArgs are run's flags for received files.
type fileArgs struct {
	downloadDir   string
	acceptFrom    []string
	acceptMaxSize string
}

func registerFileFlags(fs *pflag.FlagSet) *fileArgs {
	a := &fileArgs{}
	fs.StringVar(&a.downloadDir, "download-dir", defaultDownloadDir(), "where received files land")
	fs.StringSliceVar(&a.acceptFrom, "accept-from", nil, "names or ids whose file offers are accepted without asking, comma-separated")
	fs.StringVar(&a.acceptMaxSize, "accept-max-size", "0", "the largest offer --accept-from accepts without asking, e.g. 500MB (0: any size)")
	return a
}

// maxSize parses --accept-max-size.
func (a *fileArgs) maxSize() (int64, error) {
	n, err := humanize.ParseBytes(a.acceptMaxSize)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("--accept-max-size %q: want a size such as 500MB or 2GiB", a.acceptMaxSize)
	}
	return int64(n), nil
}

// defaultDownloadDir is a lanchat folder in the user's download folder:
// $XDG_DOWNLOAD_DIR, else ~/Downloads.
func defaultDownloadDir() string {
	if d := os.Getenv("XDG_DOWNLOAD_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "lanchat")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "Downloads", "lanchat")
	}
	return ""
}
