// Package netlab builds a real LAN on one Linux machine out of network
// namespaces, for tests and benchmarks that must run the real program on
// several "machines": mDNS multicast, gossip, TLS streams and all.
//
// A Lab is one namespace holding a Linux bridge (the switch; no uplink, so
// nothing leaves the lab) and one namespace per host, joined to the bridge by
// a veth pair. Every veth pair is created directly inside the lab's
// namespaces, so a lab never adds an interface to the machine's own network
// namespace and labs may reuse names and address ranges freely:
//
//	namespace lct-<pid>-<rand>-br      namespace lct-<pid>-<rand>-h1
//	  br0 (bridge, snooping off)          lo   up
//	  ├── p1  ◀──── veth ────▶            eth0 10.99.0.2/24
//	  ├── p2  ◀──── veth ──▶ …            route 224.0.0.0/4 dev eth0
//	  └── …
//
// Host hN has address 10.99.0.(N+1). Each host has a route for 224.0.0.0/4
// on eth0 (without it, multicast fails with "no such device") and the bridge
// has multicast snooping off, so multicast floods to every port the way a
// dumb office switch does.
//
// Faults:
//   - Unplug/Replug take the host's bridge port down and up (a cable pulled
//     at the switch: the host's eth0 loses carrier).
//   - DropPercent drops a share of the IP packets entering and leaving a
//     host's eth0 with an nftables rule (numgen random mod 100 < N) in the
//     host's namespace.
//   - Partition splits hosts into groups whose frames the switch does not
//     forward between each other (an nftables bridge-family rule on the
//     bridge ports), so unicast, multicast, ARP and IPv6 from the other side
//     are all cut; Heal removes the rule.
//   - DropMulticastRoute deletes a host's 224.0.0.0/4 route (a socket that
//     names its interface, or is bound to the host's address, still sends
//     multicast: the kernel routes it by the interface); Readdress moves a
//     host to another subnet on the same bridge (mDNS still reaches it,
//     unicast does not), and RouteOnLink gives the route a router would.
//
// Namespace names carry the creating process's pid; New removes leftovers of
// crashed runs (Sweep), and every lab removes its namespaces in t.Cleanup,
// also when the test fails or panics.
//
// A lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), and the ip (iproute2)
// and nft (nftables) commands. Without them New skips the test with the
// reason, except when the environment has CI=true: there a test that cannot
// run is a failure, and New fails it.
package netlab
