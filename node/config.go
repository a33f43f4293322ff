package node

import (
	"errors"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"

	"lanchat/mesh"
)

// Config configures a node. DefaultConfig gives one that works on a LAN.
type Config struct {
	// DataDir holds the identity key, the lock, the history and the
	// control socket.
	DataDir string
	// Name is the display name; empty means the user and host name.
	Name string
	// Bind is the IP address to listen on; empty chooses the LAN address.
	Bind string
	// Iface names the network interfaces to use, and only those (a
	// virtual one too); empty uses every LAN interface (see addr.go).
	Iface []string
	// Port is the TLS port for messages; GossipPort the memberlist port.
	// Each falls back to a free port when taken.
	Port       int
	GossipPort int
	// Join lists host:port gossip addresses of peers to join, for peers
	// that multicast cannot reach.
	Join []string
	// NoMDNS turns multicast discovery off; peers come from Join only.
	NoMDNS bool
	// ReconnectHorizon is how long a peer lost without a goodbye is still
	// dialled again (with backoff) before it is forgotten; 0 means the
	// mesh's default, 72 hours.
	ReconnectHorizon time.Duration
	// NetworkKeyFile, when set, is the office key file (lanchat keygen):
	// the node joins only the closed network of that key, and nobody
	// without it reaches the node (package netkey, mesh's network.go).
	NetworkKeyFile string
	// Logger receives diagnostics (not events); nil discards them.
	Logger *slog.Logger
	// Sync is how hard the history is pushed to disk: "normal" (the
	// default) survives a killed or crashed lanchat, losing nothing it
	// reported; "full" also survives a power cut, at the price of an fsync
	// per commit (about 0.1-1 ms each, shared by concurrent messages).
	Sync string
	// PeerRate and PeerBurst bound how many messages a second one peer
	// may deliver to this node (a token bucket; 0 means the default,
	// negative means no limit).
	PeerRate  float64
	PeerBurst float64
	// EventBuffer is how many events a subscriber may fall behind before
	// it is sent a resync; 0 means 4096.
	EventBuffer int
	// DownloadDir is where received files land; empty means "downloads"
	// in DataDir. (The command line is to pass the user's download
	// folder.)
	DownloadDir string
	// AcceptFrom lists peers, by id or by a name resolved as `send`
	// resolves it, whose offers are accepted without asking; AcceptMaxSize
	// bounds the size of those (0: no bound). Empty accepts nothing
	// without asking.
	AcceptFrom    []string
	AcceptMaxSize int64
	// MeshTune adjusts memberlist timers (tests only).
	MeshTune func(*memberlist.Config)
}

// DefaultConfig returns the configuration `lanchat run` uses with no flags.
func DefaultConfig() Config {
	return Config{
		DataDir:          DefaultDataDir(),
		Name:             DefaultName(),
		Port:             mesh.DefaultTLSPort,
		GossipPort:       mesh.DefaultGossipPort,
		ReconnectHorizon: mesh.DefaultConfig().ReconnectHorizon,
	}
}

const defaultEventBuffer = 4096

// withDefaults fills what a zero Config leaves open and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName()
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = defaultEventBuffer
	}
	if err := mesh.ValidName(cfg.Name); err != nil {
		return cfg, &ConfigError{Field: "Name", Err: err}
	}
	if _, err := syncMode(cfg.Sync); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// ConfigError is a setting the node cannot use. Field names the Config
// field, so a front end can name its own flag or setting.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return strings.ToLower(e.Field) + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// errConfig reports whether err is a *ConfigError.
func errConfig(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// DefaultDataDir is $XDG_DATA_HOME/lanchat, or ~/.local/share/lanchat.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "lanchat")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "lanchat")
	}
	return filepath.Join(os.TempDir(), "lanchat-"+strconv.Itoa(os.Getuid()))
}

// DefaultName is "user@host", cut to fit the name limit.
func DefaultName() string {
	name := "someone"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + strings.SplitN(h, ".", 2)[0]
	}
	if mesh.ValidName(name) != nil {
		return "someone"
	}
	for len(name) > mesh.MaxNameLen {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	return name
}

// ControlSocket is the path of the control socket in a data directory.
func ControlSocket(dataDir string) string { return filepath.Join(dataDir, "control.sock") }

// ContactsFile is the contact book's name in the data directory.
const ContactsFile = "contacts.json"
