package resilient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// callGet sends a GET to url with ctx through client and closes the body.
func callGet(ctx context.Context, t *testing.T, client *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

var fastRetry = resilient.WithRetry(resilient.RetryPolicy{
	MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond,
	Budget: &resilient.RetryBudget{Unlimited: true},
})

// TestCallPolicyMaxAttempts: MaxAttempts 1 sends one request where the
// pipeline retries; the next call, without it, retries as configured; a
// call may also ask for fewer retries than the pipeline's.
func TestCallPolicyMaxAttempts(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
	client := resilient.NewClient(fastRetry, resilient.Without(resilient.StageBreaker))
	for _, step := range []struct {
		name string
		ctx  context.Context
		want int
	}{
		{"MaxAttempts 1", resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{MaxAttempts: 1}), 1},
		{"no policy", context.Background(), 3},
		{"MaxAttempts 2", resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{MaxAttempts: 2}), 2},
		{"zero policy", resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{}), 3},
	} {
		srv.ResetCounts()
		resp, err := callGet(step.ctx, t, client, srv.URL)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: %v, %v", step.name, resp, err)
		}
		if srv.Count() != step.want {
			t.Errorf("%s: %d requests, want %d", step.name, srv.Count(), step.want)
		}
	}
}

// TestCallPolicyTimeouts: a call's attempt or total timeout fires against
// a hung host where the pipeline's (10 s, 30 s) would still be waiting,
// in the standard pipeline with the total fused into Retry and without.
func TestCallPolicyTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []resilient.Option
		p    resilient.CallPolicy
		want time.Duration // the TimeoutError's After
	}{
		{"attempt", []resilient.Option{fastRetry}, resilient.CallPolicy{AttemptTimeout: 50 * time.Millisecond}, 50 * time.Millisecond},
		{"total fused", []resilient.Option{fastRetry}, resilient.CallPolicy{TotalTimeout: 80 * time.Millisecond}, 80 * time.Millisecond},
		{"total, long attempt", []resilient.Option{fastRetry}, resilient.CallPolicy{TotalTimeout: 80 * time.Millisecond, AttemptTimeout: time.Minute}, 80 * time.Millisecond},
		{"total stage", []resilient.Option{resilient.Without(resilient.StageRetry)}, resilient.CallPolicy{TotalTimeout: 80 * time.Millisecond}, 80 * time.Millisecond},
		{"no retry stage", []resilient.Option{resilient.WithRetry(resilient.RetryPolicy{MaxAttempts: 1})}, resilient.CallPolicy{TotalTimeout: 80 * time.Millisecond}, 80 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hang := resilienttest.Hang()
			srv := resilienttest.NewServer(t, hang)
			client := resilient.NewClient(tc.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			_, err := callGet(resilient.WithCallPolicy(ctx, tc.p), t, client, srv.URL)
			var te *resilient.TimeoutError
			if !errors.As(err, &te) || te.After != tc.want {
				t.Fatalf("after %v: err %v, want a TimeoutError after %v", time.Since(start), err, tc.want)
			}
			if err := hang.AwaitAbandoned(ctx, 1); err != nil {
				t.Errorf("the hung request was not let go: %v", err)
			}
		})
	}
}

// TestCallPolicyNoFallback: the call gets its failure; the next one the
// fallback.
func TestCallPolicyNoFallback(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusBadGateway))
	client := resilient.NewClient(resilient.Without(resilient.StageRetry),
		resilient.WithFallback(resilient.StaticFallback(http.StatusOK, nil, "stale")))
	ctx := resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{NoFallback: true})
	if resp, err := callGet(ctx, t, client, srv.URL); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("NoFallback: %v, %v; want the 502", resp, err)
	}
	if resp, err := callGet(context.Background(), t, client, srv.URL); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("no policy: %v, %v; want the fallback's 200", resp, err)
	}
}

// TestCallPolicyNoHedge: a slow host gets one request from a call with
// NoHedge (or MaxAttempts 1), and a hedge from a call without.
func TestCallPolicyNoHedge(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Latency(100*time.Millisecond))
	client := resilient.NewClient(resilient.WithHedge(resilient.HedgePolicy{
		Delay: 5 * time.Millisecond, Budget: &resilient.RetryBudget{Unlimited: true}}))
	for _, step := range []struct {
		name string
		ctx  context.Context
		want int
	}{
		{"NoHedge", resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{NoHedge: true}), 1},
		{"MaxAttempts 1", resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{MaxAttempts: 1}), 1},
		{"no policy", context.Background(), 2},
	} {
		srv.ResetCounts()
		if _, err := callGet(step.ctx, t, client, srv.URL); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if srv.Count() != step.want {
			t.Errorf("%s: %d requests, want %d", step.name, srv.Count(), step.want)
		}
	}
}

func TestCallPolicyNegativePanics(t *testing.T) {
	for _, p := range []resilient.CallPolicy{{MaxAttempts: -1}, {AttemptTimeout: -1}, {TotalTimeout: -time.Second}} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "CallPolicy.") {
					t.Errorf("%+v: recovered %v, want a panic naming the field", p, r)
				}
			}()
			resilient.WithCallPolicy(context.Background(), p)
		}()
	}
}

// BenchmarkCallPolicy is the standard pipeline's happy path with a call's
// policy, and without one once some call has used one (the context
// lookups). BenchmarkChain/standard is the path of a program that never
// made one.
func BenchmarkCallPolicy(b *testing.B) {
	rt := resilient.NewTransport(memTransport{})
	ctx := resilient.WithCallPolicy(context.Background(), resilient.CallPolicy{MaxAttempts: 2})
	b.Run("none", func(b *testing.B) { benchRoundTrip(b, rt) })
	b.Run("set", func(b *testing.B) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.test/", nil)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
