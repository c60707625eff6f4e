package sdktest

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// pipeline is the standard pipeline over a base transport of the test's
// own (so its idle connections are closed at the end, for goleak), with
// near-zero backoff and no retry budget so that arrivals depend only on
// the script. opts come last and win.
func pipeline(t *testing.T, opts ...resilient.Option) http.RoundTripper {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	all := []resilient.Option{
		resilient.WithRetry(fastRetry(3)),
		resilient.WithTotalTimeout(10 * time.Second),
		resilient.WithAttemptTimeout(5 * time.Second),
	}
	return resilient.NewTransport(base, append(all, opts...)...)
}

// fastRetry is a retry policy of n attempts that waits at most a few
// milliseconds between them and is never refused by a budget.
func fastRetry(n int) resilient.RetryPolicy {
	return resilient.RetryPolicy{
		MaxAttempts:  n,
		InitialDelay: time.Millisecond,
		MaxDelay:     5 * time.Millisecond,
		Budget:       &resilient.RetryBudget{Unlimited: true},
	}
}

// openBreaker trips on the first failure and stays open for the test.
func openBreaker() resilient.Option {
	return resilient.WithBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 1, OpenTimeout: time.Minute})
}

// callCtx bounds one SDK call generously: a hang fails the test, it does
// not stall CI.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkArrivals asserts the server saw want requests, all with the same
// non-empty body (when wantBody) and the same value of keyHeader (when
// set), and returns that key.
func checkArrivals(t *testing.T, reqs []resilienttest.Request, want int, wantBody bool, keyHeader string) string {
	t.Helper()
	if len(reqs) != want {
		t.Fatalf("server saw %d requests, want %d", len(reqs), want)
	}
	first := reqs[0]
	if wantBody && len(first.Body) == 0 {
		t.Errorf("request 1 arrived with an empty body")
	}
	key := ""
	if keyHeader != "" {
		key = first.Header.Get(keyHeader)
		if key == "" {
			t.Errorf("request 1 has no %s", keyHeader)
		}
	}
	for _, r := range reqs[1:] {
		if !bytes.Equal(r.Body, first.Body) {
			t.Errorf("request %d body %q, request 1 sent %q", r.N, r.Body, first.Body)
		}
		if keyHeader != "" && r.Header.Get(keyHeader) != key {
			t.Errorf("request %d %s = %q, request 1 sent %q", r.N, keyHeader, r.Header.Get(keyHeader), key)
		}
	}
	return key
}
