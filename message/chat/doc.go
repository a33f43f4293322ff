// Package chat is lanchat's conversation domain: what a message is to a
// person, as opposed to how it travels (package message) or where it is
// kept (package store). It owns the outbox that keeps every outgoing
// message until its recipient's node has acknowledged it, delivery and
// read receipts, typing indicators (ephemeral: never stored or queued),
// the watchers that tell a sender what became of a
// message, the per-peer rate limit on what others send us, the contact
// book, and the resolution of a name a person types to a peer id.
//
// A Service depends on two small interfaces, not on the node that runs
// it: a Presence (who is online now) and a Transport (send a batch of
// sealed envelopes to one peer). The running node gives it the mesh and
// the message service; a one-shot command gives it the peers a
// directory listed and a dialler to their addresses; offline reads give
// it neither, and everything sent then waits in the outbox for the next
// node. File offers will be added here, as one more kind of
// conversation, behind the same interfaces.
//
// Rooms (rooms.go) are the third: group conversations with no server.
// Each room is a log of signed events (messages, joins, leaves) that
// every member holds a copy of, numbered per author, so that what a node
// holds is a vector of counts and catching up asks any member for what
// lies past it (the RoomSync interface, message/roomsync on the wire).
// Every node is in #general unless it leaves it. The rules — who may
// write, what a gap or a reused number means, what a relay may pass on —
// are in rooms.go's comment.
package chat
