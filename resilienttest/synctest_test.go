package resilienttest_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// TestFakeTimeRetryAfter is the kit's pattern for time-driven behaviour:
// inside synctest.Test time.Now and every timer are fake, and time jumps
// ahead whenever every goroutine of the bubble is blocked. A 30 s
// Retry-After is honoured in no real time, and the wait is exact. The
// in-memory Transport keeps the bubble free of sockets, whose I/O would
// not count as blocked.
func TestFakeTimeRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := resilienttest.NewTransport(
			resilienttest.OnRequests(1, 1, resilienttest.RetryAfter(30*time.Second), resilienttest.Status(503)),
			resilienttest.Respond(200, "ok"),
		)
		client := &http.Client{Transport: resilient.NewTransport(tr,
			resilient.WithRetry(resilient.RetryPolicy{MaxRetryAfter: time.Minute}),
			resilient.WithTotalTimeout(2*time.Minute))}
		start := time.Now()
		resp, err := client.Get("http://api.test/orders")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if waited := time.Since(start); waited != 30*time.Second || string(body) != "ok" || tr.Count() != 2 {
			t.Errorf("waited %v for %q after %d requests; want exactly 30s, ok, 2", waited, body, tr.Count())
		}
	})
}

// TestFakeTimeBreaker: a breaker opens after three failures, refuses
// while open, and lets a probe through once OpenTimeout (plus its jitter
// of up to 10 %) has passed: time.Sleep in the bubble returns at once.
func TestFakeTimeBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := resilienttest.NewTransport(resilienttest.FailFirst(3, 503), resilienttest.Respond(200, "ok"))
		rt := resilient.Chain(tr, resilient.CircuitBreaker(resilient.BreakerPolicy{
			ConsecutiveFailures: 3, OpenTimeout: 10 * time.Second, FirstOpenTimeout: 10 * time.Second}))
		call := func() error {
			req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
			resp, err := rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			return err
		}
		for range 3 {
			if err := call(); err != nil {
				t.Fatal(err)
			}
		}
		if err := call(); !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("after 3 failures: %v; want ErrCircuitOpen", err)
		}
		time.Sleep(9 * time.Second)
		if err := call(); !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("9s later: %v; want still open", err)
		}
		time.Sleep(2 * time.Second) // past 10 s and the 10 % jitter
		if err := call(); err != nil || tr.Count() != 4 {
			t.Fatalf("11s later: %v after %d requests; want the probe through", err, tr.Count())
		}
	})
}
