package resilient_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A RateLimit stage holds each host to a rate. At 2 calls a second with a
// burst of 1, a second call at once is refused, says when its turn comes,
// and is never sent.
func ExampleRateLimit() {
	srv := resilienttest.StartServer()
	defer srv.Close()

	limit := resilient.RateLimit(resilient.RateLimitPolicy{Rate: 2, Burst: 1})
	client := &http.Client{Transport: resilient.Chain(nil, limit)}
	defer client.CloseIdleConnections()
	for range 2 {
		resp, err := client.Get(srv.URL)
		var rle *resilient.RateLimitedError
		if errors.As(err, &rle) {
			fmt.Println("refused; turn in about", rle.RetryAfter.Round(250*time.Millisecond))
			continue
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	fmt.Println("server saw", srv.Count())
	// Output:
	// 200 OK
	// refused; turn in about 500ms
	// server saw 1
}

// BenchmarkRateLimit measures the stage's happy path over an in-memory
// transport: off (the bare transport), on with no Rate (the standard
// pipeline's default: only cool-downs), with a rate never reached, and the
// standard pipeline with and without the stage.
func BenchmarkRateLimit(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchRoundTrip(b, memTransport{}) })
	b.Run("cooldown-only", func(b *testing.B) {
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.RateLimit(resilient.RateLimitPolicy{})))
	})
	b.Run("rate", func(b *testing.B) {
		p := resilient.RateLimitPolicy{Rate: 1e9, Burst: 1e6}
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.RateLimit(p)))
	})
	b.Run("standard", func(b *testing.B) { benchRoundTrip(b, resilient.NewTransport(memTransport{})) })
	b.Run("standard-without", func(b *testing.B) {
		benchRoundTrip(b, resilient.NewTransport(memTransport{}, resilient.Without(resilient.StageRateLimit)))
	})
}
