// Package node is lanchat's composition root: it wires discovery, mesh and
// message into one running peer, owns their lifecycle, and serves the
// control socket through which the command line and scripts reach it. It
// also holds the one-shot path that commands take when no node runs.
package node
