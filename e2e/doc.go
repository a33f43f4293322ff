// Package e2e holds the end-to-end tests and benchmarks of lanchat: they
// build the real binary once, start it as `lanchat run --json` on hosts of
// a namespace LAN (internal/netlab) and drive it the way a person or a
// script would, through its command line, its JSON event stream, signals,
// and faults of the network (unplugged cables, partitions).
//
// They need root and the ip and nft commands; without them they skip, or
// fail when CI=true. Run them with
//
//	go test ./e2e/
//	go test -run '^$' -bench . ./e2e/   # the speed targets
//
// LANCHAT_E2E_BINARY=path tests a prebuilt binary instead of building one,
// and LANCHAT_E2E_RACE=1 builds it with the race detector.
package e2e
