// Package discovery finds other lanchat nodes on the local network with
// multicast DNS (RFC 6762) and DNS service discovery (RFC 6763), and
// advertises this one. Its only output is a stream of candidates: claims of
// an id, addresses and ports, which mesh verifies over TLS before trusting.
// It knows nothing of memberlist (a Peers hook tells it how many live
// peers gossip holds); the Browser interface lets another mDNS
// implementation replace this one, which speaks mDNS itself on
// github.com/miekg/dns (hashicorp/mdns builds its records).
//
// # Wire format
//
// This section is the specification of what the package puts on the
// network.
//
// Service. A node advertises one instance of the service type
// "_lanchat._tcp" in the domain "local.":
//
//	service name   _lanchat._tcp.local.
//	instance name  <id in lower case>._lanchat._tcp.local.
//	host name      <id in lower case>.local.
//
// where <id> is the node's peer id: 52 characters of the RFC 4648 base32
// alphabet without padding (the SHA-256 of its Ed25519 public key). The
// host name is the id, never the machine's host name, which nodes in
// network namespaces or containers share.
//
// Records. Every record is class IN with a TTL of 120 seconds:
//
//	_lanchat._tcp.local.          PTR   <instance name>
//	<instance name>               SRV   priority 10, weight 1, port <tp>, target <host name>
//	<host name>                   A     each advertised IPv4 address
//	<host name>                   AAAA  each advertised IPv6 address
//	<instance name>               TXT   the strings below
//
// TXT strings are printable ASCII "key=value", each at most 255 bytes
// (MaxTXTString), at most 32 strings (MaxTXTStrings). Keys are lower case
// when sent and matched without regard to case. Order does not matter; a
// receiver ignores keys it does not know and strings without "=", and
// rejects the whole record when a key it knows appears twice or is
// malformed:
//
//	id=<peer id>        required; upper case when sent, lower case accepted
//	v=<version>         required; protocol version, decimal, 0 to 2^31-1
//	gp=<port>           required; memberlist gossip port (TCP and UDP), 1-65535
//	tp=<port>           required; TLS stream port (TCP), 1-65535, also the SRV port
//	addrs=<ip>,<ip>...  optional; up to 16 (MaxAddrs) IPv4 and IPv6 addresses
//	                    the node is reachable on, comma separated, no zones,
//	                    no spaces, no unspecified or multicast addresses
//	net=<tag>           present only when a network key is set; 1-64 of
//	                    A-Z a-z 0-9 - . _ ~ + / = :
//
// Decimal numbers have no sign and no leading zeros. The addresses are in
// the TXT record as well as in A/AAAA records because some mDNS libraries
// (hashicorp/mdns among them) keep only the last A record of an answer; a
// receiver takes the union of both. A link-local IPv6 address gets the
// zone of the interface the answer came in on.
//
// Announcements. When its responder starts, a node multicasts its
// records unsolicited (RFC 6762 §8.3), twice, one second apart, so that
// every node on the link learns of it at once without querying: a
// response with header ID=0, QR=1, AA=1, the PTR, SRV, A, AAAA and TXT
// records above in the answer section and no question, sent from port
// 5353 to 224.0.0.251:5353 ([ff02::fb]:5353 when IPv4 is unavailable). It
// announces again after a network change (see below). On a clean exit it
// sends the same message with every TTL 0, a goodbye (§10.1): receivers
// drop the records, and hand on no candidate for them. Departures are
// still told by gossip; the goodbye is for mDNS caches.
//
// Interfaces. An MDNS works on one interface (Config.Iface); lanchat runs
// one per LAN interface, each advertising that interface's addresses, so
// that each link is answered with addresses that mean something on it
// (link-local ones above all). On Linux their group sockets set
// IP_MULTICAST_ALL and IPV6_MULTICAST_ALL off: by default a socket bound to
// port 5353 is handed the group's packets from every interface any socket
// of the machine joined it on, and each responder would hear, and answer,
// every link. On an interface without an IPv4 address (an IPv6-only LAN)
// everything goes over IPv6: the IPv4 group cannot be joined there, and an
// IPv4 query could leave with no source address, unheard, without failing.
//
// Queries. A node asks:
//
//	question  _lanchat._tcp.local.  PTR  IN   (QU bit clear)
//	header    random ID, QR=0, OPCODE=0, RD=0
//	answers   known answers: a PTR record per instance heard of whose TTL
//	          is more than half left, with the TTL left (§7.1), as many
//	          as fit in 1400 bytes
//	to        224.0.0.251:5353 from an ephemeral UDP port
//	          ([ff02::fb]:5353 when IPv4 multicast is unavailable, and
//	          on an interface without IPv4)
//
// three times 250 ms apart at start, then after 10 seconds; while mesh
// gossip holds the cluster (the node knows live peers) each gap doubles, up
// to an hour (§5.2); while it knows none the gap stays 10 seconds, and
// when it loses every peer (a cable out, Wi-Fi gone) it starts over with
// the three quick queries. It does the same when the addresses or carrier
// of its interfaces change. After a multicast failure it retries every 10
// seconds, and repeats the three quick queries once it works again. Each
// query listens for answers for at most one second. What a query lists
// as known is not answered, so the querier hands on, for each, what it
// heard last.
//
// Answers. The responder of a node listens on 224.0.0.251:5353 (and
// [ff02::fb]:5353) and answers, from port 5353, a query from another port
// (or with the QU bit) by unicast to the source address and port, with the
// query's ID and question; a query from port 5353 without the QU bit by
// multicast, with ID=0. Either has QR=1, AA=1, RCODE=0, and the PTR, SRV,
// A, AAAA and TXT records above in the answer section. It also answers a
// PTR question for _services._dns-sd._udp.local. (with a PTR to
// _lanchat._tcp.local.), SRV, TXT and ANY questions for its instance name,
// and A and AAAA questions for its host name. It leaves out every record
// the query lists as a known answer with at least half the record's TTL
// (§7.1); a known PTR leaves out the instance's other records too, and a
// query whose answers are all known gets no reply. It answers at most 50
// queries a second.
//
// Self-check. lanchat doctor asks, once per interface, for its own
// instance: a query with a random ID, QR=0, RD=0 and one question,
// "<instance>._lanchat._tcp.local. TXT IN" with the QU bit set, sent from
// an ephemeral port to 224.0.0.251:5353, listening one second. Only the
// name's owner answers (by unicast, as above); its own responder hearing
// the group is what other nodes on the link need to find it.
//
// A receiver reads at most 9000 bytes of a message and looks at its first
// 64 records and 16 instances. It ignores messages whose OPCODE or RCODE is
// not zero, and responses heard on the group that do not come from port
// 5353; it hands on at most 32 announcements a second.
// A receiver accepts only answers whose instance name ends in
// "._lanchat._tcp.local." and whose TXT record is valid, and skips its own.
// Everything else (other services on the network, malformed answers) is
// ignored.
//
// Example exchange, node 5ZQ… (on 192.168.1.20 and fd00::20) answering a
// query from 192.168.1.31 port 41234:
//
//	192.168.1.31:41234 → 224.0.0.251:5353
//	    ID 0x3a7c, flags 0x0000, QD 1
//	    Q  _lanchat._tcp.local. PTR IN
//
//	192.168.1.20:5353 → 192.168.1.31:41234
//	    ID 0x3a7c, flags 0x8400 (QR, AA), QD 1, AN 5
//	    Q  _lanchat._tcp.local. PTR IN
//	    _lanchat._tcp.local. 120 IN PTR 5zqhf…aq._lanchat._tcp.local.
//	    5zqhf…aq._lanchat._tcp.local. 120 IN SRV 10 1 7738 5zqhf…aq.local.
//	    5zqhf…aq.local. 120 IN A 192.168.1.20
//	    5zqhf…aq.local. 120 IN AAAA fd00::20
//	    5zqhf…aq._lanchat._tcp.local. 120 IN TXT "id=5ZQHF…AQ" "v=2"
//	        "gp=7737" "tp=7738" "addrs=192.168.1.20,fd00::20" "net=k1-3f9a0c"
//
// (ids shortened with "…"; the port numbers are examples, lanchat's own
// defaults are chosen by mesh.)
//
// # Failures
//
// Without a multicast route the kernel refuses to join the group ("no such
// device"). Run then logs one warning naming the interface, wrapping
// ErrNoMulticast, keeps running, retries quietly and logs at info level when
// discovery works again. Peers can still be reached with --join.
package discovery
