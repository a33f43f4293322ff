// Package mesh is lanchat's membership layer: who is on the network, in
// what state, and mutually authenticated streams to them.
//
// Membership and presence ride on hashicorp/memberlist gossip; each node's
// display name, state and status text travel in its node metadata (see
// Meta). Streams are TLS 1.3 with a self-signed Ed25519 certificate on both
// sides; a peer's id is the base32 SHA-256 of its public key, so a
// handshake proves the id and nothing else needs to be trusted. One TLS
// listener routes streams by ALPN to the packages that registered them.
//
// What gossip says of a peer is a claim until a handshake at its address
// proves its key: then the peer is Verified, and subscribers hear so in
// order with the membership events (Joined, Returned, Updated, Lost,
// Departed). Each run of a peer (one start of its process) is verified
// on its own.
package mesh
