// Package chat is lanchat's conversation domain: what a message is to a
// person, as opposed to how it travels (package message) or where it is
// kept (package store). It owns the outbox that keeps every outgoing
// message until its recipient's node has acknowledged it, delivery and
// read receipts, the watchers that tell a sender what became of a
// message, the per-peer rate limit on what others send us, the contact
// book, and the resolution of a name a person types to a peer id.
//
// A Service depends on two small interfaces, not on the node that runs
// it: a Presence (who is online now) and a Transport (send a batch of
// sealed envelopes to one peer). The running node gives it the mesh and
// the message service; a one-shot command gives it the peers a
// directory listed and a dialler to their addresses; offline reads give
// it neither, and everything sent then waits in the outbox for the next
// node. Rooms and file offers will be added here, as more kinds of
// conversation and more receipts, behind the same two interfaces.
package chat
