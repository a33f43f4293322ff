package message

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// BenchmarkSendAck measures Send → ack over an open stream between two
// services on loopback TLS 1.3: seal, frame, write, verify, de-duplicate,
// Deliver, ack. Compare with BenchmarkRawTLSRoundTrip.
func BenchmarkSendAck(b *testing.B) {
	n := newTestNet()
	a, r := newPeer(b, n, nil), newPeer(b, n, nil)
	ctx := context.Background()
	r.setDeliver(func(context.Context, *Envelope) error { return nil })
	if _, err := a.svc.Send(ctx, r.id.id, KindText, "warm up"); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := a.svc.Send(ctx, r.id.id, KindText, "hello, how are you?"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	// The recording Deliver would grow without bound; drop what it kept.
	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
}

// BenchmarkSendAckParallel measures throughput of concurrent sends sharing
// one stream.
func BenchmarkSendAckParallel(b *testing.B) {
	n := newTestNet()
	a, r := newPeer(b, n, nil), newPeer(b, n, nil)
	ctx := context.Background()
	if _, err := a.svc.Send(ctx, r.id.id, KindText, "warm up"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.svc.Send(ctx, r.id.id, KindText, "hello, how are you?"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRawTLSRoundTrip measures a 1-byte echo over the same kind of
// connection: mutual TLS 1.3 with Ed25519 certificates on loopback.
func BenchmarkRawTLSRoundTrip(b *testing.B) {
	srvID, cliID := newIdentity(b), newIdentity(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		c := tls.Server(raw, srvID.tlsConfig(true, ""))
		defer c.Close()
		buf := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := dialTLS(context.Background(), cliID, srvID.id, ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := []byte{'x'}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	c.Close()
	<-done
}

// reportPercentiles adds p50 and p99 latencies, in microseconds.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
