// Package api is lanchat's local API: the typed requests, replies and
// events through which every front end (the command line, the terminal
// UI, scripts with curl) reaches a node, served as HTTP over the node's
// control socket. It owns its types and imports neither node nor mesh,
// so a client depends on nothing else of lanchat. API.md documents the
// wire form for script authors; a test keeps it in step with the code.
package api
