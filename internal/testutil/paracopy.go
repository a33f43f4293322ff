package testutil

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"os"
	"time"
)

// ParallelTLSCopy copies size bytes of the file src to the file dst over
// n TLS connections accepted on ln and made by dial, stream k carrying
// the k-th of n equal ranges after an 8-byte offset, and returns the time
// until every range is written and dst closed. It is the baseline the
// file-transfer benchmarks weigh one stream against several with, on
// loopback (filexfer) and between namespace hosts (e2e).
func ParallelTLSCopy(ln net.Listener, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	srvCfg, cliCfg *tls.Config, src, dst string, size int64, n int) (time.Duration, error) {
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	in, err := os.Open(src)
	if err != nil {
		out.Close()
		return 0, err
	}
	defer in.Close()
	span := (size + int64(n) - 1) / int64(n)
	errs := make(chan error, 2*n)
	start := time.Now()
	for range n {
		go func() {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			tc := tls.Server(c, srvCfg)
			defer tc.Close()
			var hdr [8]byte
			if _, err := io.ReadFull(tc, hdr[:]); err != nil {
				errs <- err
				return
			}
			off := int64(binary.BigEndian.Uint64(hdr[:]))
			_, err = io.CopyBuffer(io.NewOffsetWriter(out, off), tc, make([]byte, 256<<10))
			errs <- err
		}()
	}
	for k := range n {
		go func() {
			raw, err := dial(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			c := tls.Client(raw, cliCfg)
			defer c.Close()
			off := int64(k) * span
			if _, err := c.Write(binary.BigEndian.AppendUint64(nil, uint64(off))); err != nil {
				errs <- err
				return
			}
			_, err = io.CopyBuffer(c, io.NewSectionReader(in, off, min(span, size-off)), make([]byte, 256<<10))
			if err == nil {
				err = c.CloseWrite()
			}
			if err == nil {
				// Until the other end has it all and closes: a close
				// before that, with its session ticket unread, could
				// reset the connection under data not yet read.
				_, err = io.Copy(io.Discard, c)
			}
			errs <- err
		}()
	}
	var first error
	for range 2 * n {
		if err := <-errs; err != nil && first == nil {
			first = err
			ln.Close() // the accepts still waiting give up
		}
	}
	if err := out.Close(); err != nil && first == nil {
		first = err
	}
	return time.Since(start), first
}
