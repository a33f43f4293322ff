//go:build !linux

package discovery

import "net"

// onlyOwnGroups is Linux's IP_MULTICAST_ALL fix; elsewhere sockets hear
// only the groups they joined already.
func onlyOwnGroups(c *net.UDPConn, v6 bool) {}
