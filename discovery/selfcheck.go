package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// HeardSelf asks, once, on iface (nil: the default multicast interface),
// for the TXT record of the instance advertised for id, from an
// ephemeral port so that the answer comes back by unicast, and reports
// whether an answer for that instance came within window. An answer says
// that multicast leaves this machine by iface and that the node's own
// responder hears the group there and answers: what every other node on
// the link needs to find this one. Only the owner of the name answers, so
// the query costs the rest of the LAN one datagram. lanchat doctor uses
// it; err is for a query that could not be sent at all (ErrNoMulticast
// wraps a missing multicast route).
func HeardSelf(ctx context.Context, iface *net.Interface, id string, window time.Duration) (bool, error) {
	nid, ok := NormalizeID(id)
	if !ok {
		return false, fmt.Errorf("discovery: %q is not a peer id", id)
	}
	instance := strings.ToLower(nid) + "." + serviceFQDN
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if iface != nil {
		if err := setMulticastIface(conn, iface, false); err != nil {
			return false, classifySend(err)
		}
	}
	q := new(dns.Msg)
	q.SetQuestion(instance, dns.TypeTXT)
	q.Question[0].Qclass |= 1 << 15 // QU: answer by unicast
	q.RecursionDesired = false
	buf, err := q.Pack()
	if err != nil {
		return false, err
	}
	if _, err := conn.WriteToUDP(buf, groupV4); err != nil {
		return false, classifySend(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(window)); err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	pkt := make([]byte, maxPacket)
	for {
		n, _, err := conn.ReadFromUDP(pkt)
		if err != nil {
			if isTimeout(err) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return false, nil
			}
			return false, err
		}
		resp := new(dns.Msg)
		if resp.Unpack(pkt[:n]) != nil || !resp.Response {
			continue
		}
		for i, rr := range resp.Answer {
			if i >= maxRecords {
				break
			}
			if _, ok := rr.(*dns.TXT); ok && strings.EqualFold(rr.Header().Name, instance) && rr.Header().Ttl > 0 {
				return true, nil
			}
		}
	}
}

func classifySend(err error) error {
	if noRoute(err) {
		return fmt.Errorf("%w: %w", ErrNoMulticast, err)
	}
	return err
}
