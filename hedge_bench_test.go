package resilient_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
)

// BenchmarkHedgeHappyPath is the cost of the stage when the first attempt
// answers before the delay, over an in-memory transport.
func BenchmarkHedgeHappyPath(b *testing.B) {
	b.Run("raw", func(b *testing.B) { benchRoundTrip(b, memTransport{}) })
	b.Run("fixed", func(b *testing.B) {
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.Hedge(resilient.HedgePolicy{Delay: time.Second})))
	})
	b.Run("adaptive", func(b *testing.B) {
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.Hedge(resilient.HedgePolicy{})))
	})
	b.Run("retry", func(b *testing.B) {
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.Retry(resilient.RetryPolicy{})))
	})
}

// tailTransport answers in 1-2 ms, except that 5 % of requests (hedges
// included) stall for a second. It honours cancellation, as net/http does.
type tailTransport struct{}

func (tailTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	d := time.Millisecond + rand.N(time.Millisecond)
	if rand.Float64() < 0.05 {
		d = time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader("ok")),
		Request:    req,
	}, nil
}

// BenchmarkHedgeTail puts a number on the tail: calls through a transport
// where 5 % of requests stall 1 s, with and without hedging, reporting
// the p50 and p99 of the call latency. Run it with a fixed count, e.g.
// -benchtime=2000x; calls run 40 at a time.
func BenchmarkHedgeTail(b *testing.B) {
	for _, bc := range []struct {
		name  string
		stage resilient.Middleware
	}{
		{"none", nil},
		{"delay=10ms", resilient.Hedge(resilient.HedgePolicy{Delay: 10 * time.Millisecond})},
		{"adaptive", resilient.Hedge(resilient.HedgePolicy{})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rt := resilient.Chain(tailTransport{}, bc.stage)
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			b.SetParallelism(20)
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://example.test/", nil)
				for pb.Next() {
					start := time.Now()
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(0.999), "p99.9-ms")
		})
	}
}
