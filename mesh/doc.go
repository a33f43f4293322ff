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
//
// # Signed presence
//
// Gossip without a network key is not authenticated, so what a node says
// of itself in its metadata is signed by its identity key, for its run's
// member name, with the public key beside it (Meta.Sign, VerifyMeta), and
// a gate behind memberlist's alive and merge delegates (gate.go) refuses,
// before memberlist lists, probes or gossips a member: forgeries, our own
// id, replays (a per-run Seq, start times, runs that said goodbye, all
// signed; memberlist's incarnation is not, and decides nothing), and new
// members past the caps (Config.MaxPeers, MaxUnverified, MaxPerAddr).
// Goodbyes are signed too. What no delegate can refuse, a dead message,
// is checked by handshake for verified peers before they are shown
// offline, and they stay online while they answer (hold.go); a verified
// peer gossip calls back from lost is likewise asked first. Dials to
// addresses gossip or discovery named go through a token bucket per IP
// (addrLimiter). SECURITY.md has the reasoning.
//
// # Reconnecting
//
// memberlist never contacts a dead member again, so the two sides of a
// healed split would stay apart; the mesh dials peers lost without a
// goodbye itself (reconnector, after Serf's reconnect). Each lost peer is
// dialled with exponential backoff from 1 s, doubling to a cap of 20 s,
// each delay drawn in [d/2, d) so that nodes that lost it together do not
// dial in step; the node as a whole dials at most once per
// Config.ReconnectInterval (1 s) and at most 4 at a time, however many
// peers are lost, in its own goroutines, so a candidate from discovery
// never waits behind a dead address. A peer is forgotten after
// Config.ReconnectHorizon (72 h; Serf's ReconnectTimeout is 24 h).
//
// A dial first proves, by a TLS handshake expecting the peer's key, that
// its last address still belongs to it, and only then joins memberlist
// there: memberlist's join checks no identity, and a laptop's old DHCP
// lease may be another machine's now. An address that answers with
// another key is retired at once.
//
// A healed split re-merges with the first dial across it: memberlist's
// push-pull on that join hands each side the other's members. With k peers
// lost, one peer waits at most about max(20 s, k·1 s) between dials; in a
// split of two halves of n nodes, each of the n nodes on a side dials one
// of the n of the other side every second, so the first dial across comes
// within a second or two of the heal, and even a split of one node from
// one other heals within the 20 s cap.
//
// # Handshakes aimed at one peer
//
// News of one peer (it joined, gossip calls it dead, it is back) reaches
// every member within a gossip round, and each answered it with a
// handshake at that peer at once: to verify it, to check it before showing
// it offline, to check it before taking it back, to reconnect it, and
// then to catch up #general with it. At 50 nodes on two cores a node slow
// from its own start got more handshakes a second than it could complete
// (its accept side drops at random past 64 in progress), each failure
// made every member ask again, and it stayed offline for minutes: the
// load made the failures and the failures made the load. So the cost of
// one peer's news to that peer is bounded (spread.go):
//
//   - each member waits a random part of spreadOver(N) = N·50 ms (at most
//     5 s) before the first verification dial, the first check and the
//     first reconnect dial of a run, so the peer gets about one
//     handshake every 50 ms whatever N, and a small network still acts
//     within a fraction of a second (150 ms at 3 nodes). A crash refuses
//     the check at once, so it is shown that much later at most; an unplug
//     costs the check's askWindow more, as before;
//   - a run held online against gossip is asked every
//     max(1 s, spreadOver(N)), not every second;
//   - checks of a run that answer nothing back off, 1 s·2^k up to 16 s,
//     drawn in [d/2, d), and the failures are remembered for a minute
//     after the run leaves the list, so a run that flaps between dead and
//     alive in gossip waits for gossip (and the reconnect dials, whose
//     answer counts as a check's) with fewer and fewer questions, instead
//     of being asked every second by every member while it is slow;
//   - a check still makes up to three handshakes a second apart: giving
//     one whose TCP connection is up a second of grace instead halved
//     what a check survives at 20 % loss and showed live peers lost;
//   - failed verification dials back off the same way (500 ms·2^k, five
//     at most), and one is not made when another stream (Dial) verified
//     the run meanwhile; the chat service spreads its catch-up with a
//     peer it meets (a new node, the other side of a healed split) over
//     Spread(N) too.
//
// A node checks up to 16 runs at once (a silent one costs askWindow), so
// that a split of 25 shows in one round of checks, not in 25 s. And a
// join of a candidate discovery named is skipped when its turn comes and
// the candidate is a live member by then: a starting node is handed all
// its peers at once, and the push-pull of the first join makes the rest
// members, so joining each would exchange the whole member list 49 times.
//
// What is kept: a peer gossip calls dead is shown offline only once a
// handshake failed (a held peer after heldMisses checks in a row), and
// nothing gossip says counts before a handshake.
//
// # memberlist for tens to hundreds of nodes
//
// Costs per host, N nodes, on memberlist's LAN profile as changed here:
//
//   - Probing (ProbeInterval 1 s, ProbeTimeout 500 ms): each node probes one
//     member a second and is probed about once a second: about 2 packets
//     received per second, whatever N. Slower probing would only slow
//     failure detection; faster would cost every host at every size.
//   - Suspicion (SuspicionMult 3, SuspicionMaxTimeoutMult 2): a suspect is
//     declared dead after 3·log10(N)·ProbeInterval once one other node has
//     confirmed the suspicion, at most twice that: 3 s at 10 nodes, 4.4 s at
//     30, 6 s at 100, 8.1 s at 500, so a kill -9 is seen in about 5 s at 10
//     nodes and about 10 s at 500. (LAN defaults 4 and 6 would give 11 s and
//     up to 65 s at 500; a slow node still refutes in time on a LAN.)
//   - Gossip (GossipInterval 200 ms, GossipNodes 3, RetransmitMult 4): a
//     presence change is sent 4·ceil(log10(N+1)) times by every node, to one
//     member each time, so each host receives it about that many times
//     (8 at 10-98 nodes, 12 at 99-998) whatever the fan-out; the fan-out
//     only sets the speed, about log4(N) rounds: 0.6 s to reach 50 nodes,
//     0.9 s to reach 500. Nothing is sent while nothing changes, but every
//     round wakes the process: at 100 ms (as here until issue 11's idle
//     figures) the ten wake-ups a second were a fifth of an idle node's
//     CPU, so the round is memberlist's LAN default.
//
// Idle, the process wakes only for memberlist's gossip rounds and probes
// and for what is due: verification dials, checks, the outbox's retries
// and reach checks each sleep until their next deadline rather than tick
// (BENCHMARKS.md, "Idle CPU"; a wake-up costs a few tens of microseconds
// of scheduler and system calls on a virtual machine, whatever it finds
// to do).
//   - Push-pull (PushPullInterval 60 s, LAN default 30 s): a full-state TCP
//     exchange with one random member, which memberlist stretches by
//     1+ceil(log2(N/32)) above 32 nodes (60 s to 32, 180 s at 128, 300 s at
//     500). Each node starts one and answers about one per interval, each
//     moving the whole member list (about 350 bytes a member, of which
//     the signed metadata's key and signature are 96) both ways: about
//     4·350·N/T bytes a second, 0.7 KB/s at 30 nodes, 2.3 KB/s at 500.
//     Each member new to the receiver costs one Ed25519 verification
//     (tens of microseconds); one it already holds, none. It is
//     anti-entropy only: joins push-pull at once, splits heal by
//     the reconnect dials above, and a lost update is re-sent by the gossip
//     retransmits; doubling the interval halves a cost that grows with N.
//
// So, once converged, a host receives about 2 packets a second for
// probing, plus push-pull's few packets per interval and the gossip of
// actual changes: flat in N but for push-pull's bytes.
//
// # Remembered addresses and reachability
//
// KnownAddrs lists the verified peers' last verified addresses, which the
// node keeps across restarts and gives back as Config.Known: they are
// dialled at start through the reconnect schedule, each dial proving the
// peer's key first (known.go). A live verified peer that answers none of
// this node's direct probes for two probe rounds, nor a handshake, is
// shown as Unreachable (seen by others, not reached from here) until it
// answers again (reach.go); it costs no packet while probes are answered.
//
// # Several addresses
//
// A node may be on several LANs (Ethernet and Wi-Fi, two VLANs), on IPv6
// only, or on link-local addresses only. It listens on every address
// ([::]) and takes TLS streams only at the addresses of its LAN interfaces
// (Config.Addrs, SetAddrs) and loopback; memberlist's packets, whose
// claims are signed, it takes at any. memberlist holds one address per
// run, fixed at its start (Config.AdvertiseAddr); the signed metadata
// lists up to MaxMetaAddrs more, re-signed when the interfaces change. The
// peer table keeps, per peer, the one address this node uses (lan.go,
// ownAddrs.pick): on a subnet of this node's first, then link-local with
// a known zone (the interface mDNS heard it on; a link-local address
// alone says nothing of the link), then memberlist's. Everything else follows that one
// address, so a peer seen on two addresses is one entry that does not flap
// between them: verification, reconnect dials, remembered addresses and
// memberlist's own traffic, which goes through lanTransport (memberlist's
// NodeAwareTransport, wrapping its NetTransport): each packet or stream
// to a known run goes to the address picked for it, and a join by a
// link-local address gets the zone of the interface discovery heard it
// on (memberlist cannot parse zones). A peer whose addresses are all on a
// LAN this node is not on keeps memberlist's address; its probes fail,
// others' indirect probes keep it alive, and reach.go shows it
// unreachable from here, even though no handshake could ever verify it.
//
// A peer that started before its network came up advertises 127.0.0.1 to
// memberlist for its whole run; its list, once it has addresses, is what
// others use. Picking is by subnet, not by a probe of each address: on a
// LAN, the subnets an interface is on are the hosts it reaches directly.
package mesh
