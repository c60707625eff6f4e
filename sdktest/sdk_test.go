package sdktest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// sdk is one real SDK client, wired to a fake server: a create call (POST)
// and, where the API has one, a read (GET).
type sdk struct {
	name string
	// ownKey is the header the SDK keeps the same across the attempts of
	// one call; "" means it sets none and the pipeline's Idempotency-Key
	// is the key.
	ownKey string
	// sdkRetries: the SDK's retry layer is the one kept and ours is off
	// (MaxAttempts 1); otherwise the SDK's is off and ours is kept.
	sdkRetries bool
	write      func(ctx context.Context, u string, rt http.RoundTripper) error
	read       func(ctx context.Context, u string, rt http.RoundTripper) error // nil: none tested
	ok         []resilienttest.Fault                                           // the answer when the script does not fail
}

func sdks() []sdk {
	return []sdk{awsSDK(), stripeSDK(), githubSDK(), openaiSDK(), elasticSDK(), kubeSDK()}
}

func (s sdk) keyHeader() string {
	if s.ownKey != "" {
		return s.ownKey
	}
	return resilient.DefaultIdempotencyHeader
}

func (s sdk) opts(more ...resilient.Option) []resilient.Option {
	if s.sdkRetries {
		// Our retries off; the host's cool-down after a 429 waits rather
		// than refuses, since the SDK retries at once, Retry-After or not.
		more = append([]resilient.Option{resilient.WithRetry(fastRetry(1)),
			resilient.WithRateLimit(resilient.RateLimitPolicy{MaxWait: 5 * time.Second})}, more...)
	}
	return more
}

func errUnexpected(what, got string) error { return fmt.Errorf("unexpected %s %q", what, got) }

// Failures the server declares it did not act on (503, then 429 with
// Retry-After: 1) are re-sent, whole and under one key, by whichever
// retry layer is kept.
func TestSDKWriteRetriedAfterDeclined(t *testing.T) {
	for _, s := range sdks() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			srv := resilienttest.NewServer(t, append([]resilienttest.Fault{
				resilienttest.OnRequests(1, 1, resilienttest.Status(http.StatusServiceUnavailable)),
				resilienttest.OnRequests(2, 2, resilienttest.RetryAfter(time.Second), resilienttest.Status(http.StatusTooManyRequests)),
			}, s.ok...)...)
			start := time.Now()
			if err := s.write(callCtx(t), srv.URL, pipeline(t, s.opts()...)); err != nil {
				t.Fatalf("create: %v", err)
			}
			took := time.Since(start)
			checkArrivals(t, srv.Requests(), 3, true, s.keyHeader())
			// Our Retry honours Retry-After: 1; the floor is loose since
			// the header has a one-second resolution.
			if !s.sdkRetries && took < 900*time.Millisecond {
				t.Errorf("call took %v, want >= 1 s (Retry-After)", took)
			}
			t.Logf("3 arrivals in %v", took.Round(time.Millisecond))
		})
	}
}

// Failures after which the server may have acted (502, then a reset) are
// re-sent for reads, and for writes that carry the SDK's own key.
func TestSDKRetriedAfterAmbiguous(t *testing.T) {
	for _, s := range sdks() {
		for _, op := range []struct {
			name string
			call func(ctx context.Context, u string, rt http.RoundTripper) error
			body bool
		}{{"read", s.read, false}, {"write", s.write, true}} {
			if op.call == nil || (op.body && s.ownKey == "") {
				continue // a write keyed only by the pipeline: see nodup_test.go
			}
			t.Run(s.name+"/"+op.name, func(t *testing.T) {
				t.Parallel()
				srv := resilienttest.NewServer(t, append([]resilienttest.Fault{
					resilienttest.OnRequests(1, 1, resilienttest.Status(http.StatusBadGateway)),
					resilienttest.OnRequests(2, 2, resilienttest.ResetConn()),
				}, s.ok...)...)
				if err := op.call(callCtx(t), srv.URL, pipeline(t, s.opts()...)); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				key := ""
				if op.body {
					key = s.keyHeader()
				}
				// 3 arrivals whoever re-sent the third: our Retry, or
				// net/http replaying a request reset on a reused connection.
				checkArrivals(t, srv.Requests(), 3, op.body, key)
			})
		}
	}
}

// An open breaker's error still matches ErrCircuitOpen after the SDK has
// wrapped it, and costs no request.
func TestSDKErrorsMatchErrCircuitOpen(t *testing.T) {
	for _, s := range sdks() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
			rt := pipeline(t, resilient.WithRetry(fastRetry(1)), openBreaker())
			if err := s.write(callCtx(t), srv.URL, rt); err == nil {
				t.Fatal("first call succeeded against a 503")
			}
			err := s.write(callCtx(t), srv.URL, rt)
			if !errors.Is(err, resilient.ErrCircuitOpen) {
				t.Fatalf("second call: %T %v, want errors.Is ErrCircuitOpen", err, err)
			}
			if n := srv.Count(); n != 1 {
				t.Errorf("server saw %d requests, want 1 (the one that opened the breaker)", n)
			}
			t.Logf("%T: %v", err, err)
		})
	}
}
