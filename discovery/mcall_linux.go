package discovery

import (
	"net"

	"golang.org/x/sys/unix"
)

// onlyOwnGroups makes c receive only the multicast of the groups it joined
// itself, on the interface it joined them on. Linux's default
// (IP_MULTICAST_ALL) hands a socket bound to port 5353 the group's packets
// from every interface any socket of the machine joined it on: a node
// running one responder per interface would hear each link on all of them,
// and answer a link with another link's addresses.
func onlyOwnGroups(c *net.UDPConn, v6 bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if v6 {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
		} else {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		}
	})
}
