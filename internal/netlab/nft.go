package netlab

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

const (
	// dropTable holds DropPercent's rules, in a host's namespace.
	dropTable = "inet netlab_drop"
	// partitionTable holds Partition's rules, in the bridge namespace.
	partitionTable = "bridge netlab_partition"
)

// deleteTableScript returns an nft script that removes table if it exists:
// declaring a table is a no-op when it exists, so the delete never fails.
// (nft 1.0.6, in Debian 12, has no "destroy".)
func deleteTableScript(table string) string {
	return "table " + table + "\ndelete table " + table + "\n"
}

// dropScript returns the nft script that makes a host drop n percent of the
// IP packets in and out of its eth0, replacing any earlier drop rule.
func dropScript(n int) (string, error) {
	if n < 0 || n > 100 {
		return "", fmt.Errorf("drop %d%%: want 0 to 100", n)
	}
	var b strings.Builder
	b.WriteString(deleteTableScript(dropTable))
	if n == 0 {
		return b.String(), nil
	}
	// numgen random mod 100 yields 0 to 99, and nft refuses "< 100".
	match := "numgen random mod 100 < " + strconv.Itoa(n) + " "
	if n == 100 {
		match = ""
	}
	fmt.Fprintf(&b, "table %s {\n", dropTable)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q %sdrop\n\t}\n", hostIface, match)
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n")
	fmt.Fprintf(&b, "\t\toifname %q %sdrop\n\t}\n", hostIface, match)
	b.WriteString("}\n")
	return b.String(), nil
}

// partitionScript returns the nft script, for the bridge namespace, that
// stops the bridge forwarding frames between the groups of bridge ports,
// replacing any earlier partition. A frame entering from one group's port is
// dropped on its way out of every port of every other group; flooded frames
// (multicast, broadcast) pass the forward hook once per output port, so they
// are cut as well.
func partitionScript(groups [][]string) string {
	var b strings.Builder
	b.WriteString(deleteTableScript(partitionTable))
	fmt.Fprintf(&b, "table %s {\n", partitionTable)
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n")
	for i, g := range groups {
		var others []string
		for j, o := range groups {
			if j != i {
				others = append(others, o...)
			}
		}
		if len(g) == 0 || len(others) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\t\tiifname %s oifname %s drop\n", nftSet(g), nftSet(others))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// nftSet formats names as an anonymous nft set of quoted strings.
func nftSet(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return "{ " + strings.Join(q, ", ") + " }"
}

// countTable holds CountPackets' counters, in a host's namespace.
const countTable = "inet netlab_count"

// countScript returns the nft script that counts what enters a host's eth0:
// every packet, and apart the TCP connection attempts (SYN without ACK),
// all TCP, all UDP, and mDNS (UDP from or to port 5353). Its hook runs
// before netlab_drop's, so dropped packets count too.
func countScript() string {
	var b strings.Builder
	b.WriteString(deleteTableScript(countTable))
	fmt.Fprintf(&b, "table %s {\n", countTable)
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority -300; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q counter\n", hostIface)
	fmt.Fprintf(&b, "\t\tiifname %q tcp flags & (syn | ack) == syn counter\n", hostIface)
	fmt.Fprintf(&b, "\t\tiifname %q meta l4proto tcp counter\n", hostIface)
	fmt.Fprintf(&b, "\t\tiifname %q meta l4proto udp counter\n", hostIface)
	fmt.Fprintf(&b, "\t\tiifname %q udp sport 5353 counter\n", hostIface)
	fmt.Fprintf(&b, "\t\tiifname %q udp dport 5353 udp sport != 5353 counter\n", hostIface)
	b.WriteString("\t}\n}\n")
	return b.String()
}

// counterRE matches the counters of `nft list table`, in rule order.
var counterRE = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

// parseCounts reads the counters of countScript's rules from the listing of
// its table.
func parseCounts(listing string) (Counts, error) {
	m := counterRE.FindAllStringSubmatch(listing, -1)
	if len(m) != 6 {
		return Counts{}, fmt.Errorf("want 6 counters in %s, found %d", countTable, len(m))
	}
	var n [6]uint64
	for i := range m {
		v, err := strconv.ParseUint(m[i][1], 10, 64)
		if err != nil {
			return Counts{}, err
		}
		n[i] = v
	}
	bytes, err := strconv.ParseUint(m[0][2], 10, 64)
	if err != nil {
		return Counts{}, err
	}
	return Counts{Packets: n[0], Bytes: bytes, SYNs: n[1], TCP: n[2], UDP: n[3], MDNS: n[4] + n[5]}, nil
}
