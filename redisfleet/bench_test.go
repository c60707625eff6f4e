package redisfleet_test

import (
	"net/http"
	"testing"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

// okTransport answers every request with the same 200, so the benchmark
// measures the stage.
type okTransport struct{}

func (okTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

// BenchmarkHappyPath is must-hold 5, second half: a healthy call through
// the breaker with a Fleet costs within 100 ns of one without (compare
// with benchstat over -count 6).
func BenchmarkHappyPath(b *testing.B) {
	s := startRedis(b)
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
	run := func(b *testing.B, f resilient.Fleet) {
		rt := resilient.Chain(okTransport{}, resilient.CircuitBreaker(resilient.BreakerPolicy{Fleet: f}))
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := rt.RoundTrip(req)
			resp.Body.Close()
		}
	}
	b.Run("alone", func(b *testing.B) { run(b, nil) })
	b.Run("fleet", func(b *testing.B) {
		f := redisfleet.New(s.client(b), redisfleet.Options{Prefix: b.Name()})
		defer f.Close()
		run(b, f)
	})
}
