package bench

import (
	"net/http"
	"testing"
	"time"
)

// The stalls of BenchmarkTail: one request in 20 (5 %) answers after
// tailStall; hedging libraries send a second request after tailHedge.
const (
	tailEvery = 20
	tailStall = 20 * time.Millisecond
	tailHedge = 2 * time.Millisecond
)

// BenchmarkTail is latency when 5 % of requests stall, one caller, loopback:
// p50 and p99 per call, and requests sent per call (what hedging costs).
// resilient and failsafe-go hedge; the others can only wait.
func BenchmarkTail(b *testing.B) {
	libs := append([]lib{libRaw, libResilient}, peers...)
	for _, l := range libs {
		b.Run("lib="+l.name, func(b *testing.B) {
			srv := newServer(b, serverOpts{stallEvery: tailEvery, stall: tailStall})
			rt := l.wrap(srv.client, cfg{hedge: tailHedge})
			if rt == nil {
				b.Skip("not configurable yet")
			}
			req := newGet(b, srv.URL)
			lat := make([]time.Duration, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if st, err := do(rt, req); err != nil || st != http.StatusOK {
					b.Fatalf("got %d, %v; want 200", st, err)
				}
				lat[i] = time.Since(start)
			}
			b.StopTimer()
			perCall(b, srv.requests.Load(), "reqs/op")
			b.ReportMetric(float64(percentile(lat, 50)), "p50-ns")
			b.ReportMetric(float64(percentile(lat, 99)), "p99-ns")
		})
	}
}
