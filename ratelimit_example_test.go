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

// BenchmarkRateLimit measures the stage's happy path alone, over a
// transport that hands back one ready response, so that the stage's few
// nanoseconds are not lost in a transport's noise: off (that transport
// alone), on with no Rate (the standard pipeline's default: only
// cool-downs), and with a rate never reached. The standard pipeline with
// and without the stage runs over the in-memory transport.
func BenchmarkRateLimit(b *testing.B) {
	base := fixedTransport{&http.Response{StatusCode: http.StatusOK, Body: http.NoBody}}
	b.Run("off", func(b *testing.B) { benchStage(b, base) })
	b.Run("cooldown-only", func(b *testing.B) {
		benchStage(b, resilient.Chain(base, resilient.RateLimit(resilient.RateLimitPolicy{})))
	})
	b.Run("rate", func(b *testing.B) {
		p := resilient.RateLimitPolicy{Rate: 1e9, Burst: 1e6}
		benchStage(b, resilient.Chain(base, resilient.RateLimit(p)))
	})
	b.Run("standard", func(b *testing.B) { benchRoundTrip(b, resilient.NewTransport(memTransport{})) })
	b.Run("standard-without", func(b *testing.B) {
		benchRoundTrip(b, resilient.NewTransport(memTransport{}, resilient.Without(resilient.StageRateLimit)))
	})
}

type fixedTransport struct{ resp *http.Response }

func (f fixedTransport) RoundTrip(*http.Request) (*http.Response, error) { return f.resp, nil }

func benchStage(b *testing.B, rt http.RoundTripper) {
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}
