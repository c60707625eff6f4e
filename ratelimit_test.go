package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// fakeLimit is p on a fake clock, with its events recorded.
func fakeLimit(p resilient.RateLimitPolicy) (resilient.Middleware, *clock.Fake, *recordSink) {
	clk := clock.NewFake(time.Hour)
	sink := &recordSink{}
	resilient.SetRateLimitClock(&p, clk)
	resilient.SetRateLimitSink(&p, sink)
	return resilient.RateLimit(p), clk, sink
}

// call sends a bodiless GET to u through rt and reads the body; safe to
// use from any goroutine. A ctx without a deadline gets one of 10 s, so
// that a broken limiter waiting on a fake clock fails a test, not hangs it.
func call(ctx context.Context, rt http.RoundTripper, u string) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// startCalls starts n calls to u through rt; wait returns their errors
// once all have ended.
func startCalls(ctx context.Context, rt http.RoundTripper, u string, n int) (wait func() []error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := call(ctx, rt, u); err != nil {
				errs <- err
			}
		})
	}
	return func() []error {
		wg.Wait()
		close(errs)
		var out []error
		for err := range errs {
			out = append(out, err)
		}
		return out
	}
}

// mustRefuse checks that err is a refusal and returns it.
func mustRefuse(t *testing.T, err error) *resilient.RateLimitedError {
	t.Helper()
	var rle *resilient.RateLimitedError
	if !errors.Is(err, resilient.ErrRateLimited) || !errors.As(err, &rle) {
		t.Fatalf("got %v, want a *RateLimitedError matching ErrRateLimited", err)
	}
	if !strings.HasPrefix(rle.Error(), "resilient: ") {
		t.Errorf("message %q does not start with \"resilient: \"", rle.Error())
	}
	return rle
}

// Twenty goroutines call as fast as they can for 2 s of fake time at 100/s,
// burst 10: the host sees the burst plus 100 a second, exactly, and the
// rest are refused.
func TestRateLimitBurstThenRate(t *testing.T) {
	stage, clk, _ := fakeLimit(resilient.RateLimitPolicy{Rate: 100, Burst: 10})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	var refused, other atomic.Int64
	// Each goroutine calls until it is refused: every turn that is free at
	// this instant is taken before the clock moves on.
	burst := func() {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for range 20 { // a step frees at most 10 turns
					if _, err := call(t.Context(), rt, "http://api.test/"); err != nil {
						if errors.Is(err, resilient.ErrRateLimited) {
							refused.Add(1)
						} else {
							other.Add(1)
						}
						return
					}
				}
			})
		}
		wg.Wait()
	}
	burst()
	for range 1000 {
		clk.Advance(2 * time.Millisecond)
		burst()
		if tr.Count() > 1000 {
			break // a broken limiter; fail fast
		}
	}
	got := tr.Count()
	t.Logf("2 s at 100/s burst 10: host saw %d, %d refused", got, refused.Load())
	if got != 210 {
		t.Errorf("host saw %d requests, want 210 (burst 10 + 2 s × 100/s)", got)
	}
	if refused.Load() < 20*1000 || other.Load() != 0 {
		t.Errorf("%d refused, %d other errors; want every goroutine refused at every step", refused.Load(), other.Load())
	}
}

func TestRateLimitRefusesSecondCall(t *testing.T) {
	stage, _, sink := fakeLimit(resilient.RateLimitPolicy{Rate: 2, Burst: 1})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	if _, err := call(t.Context(), rt, "http://api.test/"); err != nil {
		t.Fatal(err)
	}
	body := &closeCounter{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://api.test/", body)
	_, err := rt.RoundTrip(req)
	rle := mustRefuse(t, err)
	if rle.RetryAfter != 500*time.Millisecond || rle.CoolDown || rle.Waited != 0 || rle.Err != nil {
		t.Errorf("refusal %+v, want RetryAfter 500ms from the rate, no wait", rle)
	}
	if rle.Authority != "http://api.test:80" || rle.Key != rle.Authority {
		t.Errorf("Authority %q, Key %q, want http://api.test:80", rle.Authority, rle.Key)
	}
	if tr.Count() != 1 {
		t.Errorf("host saw %d requests, want 1: a refused call is not sent", tr.Count())
	}
	if body.closed.Load() != 1 {
		t.Errorf("request body closed %d times, want 1", body.closed.Load())
	}
	if evs := sink.kinds(telemetry.RateLimited); len(evs) != 1 || evs[0].Delay != 500*time.Millisecond {
		t.Errorf("RateLimited events %+v, want one with Delay 500ms", evs)
	}
}

type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

// At 10/s, burst 1, MaxWait 1 s, five calls at once go out at 0, 100, 200,
// 300 and 400 ms; none is refused.
func TestRateLimitWaitsItsTurn(t *testing.T) {
	stage, clk, sink := fakeLimit(resilient.RateLimitPolicy{Rate: 10, Burst: 1, MaxWait: time.Second})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	start := clk.Now()
	wait := startCalls(t.Context(), rt, "http://api.test/", 5)
	if !clk.WaitTimers(4, 5*time.Second) {
		t.Fatalf("%d calls wait for a turn, want 4 (host saw %d)", clk.Timers(), tr.Count())
	}
	clk.Advance(399 * time.Millisecond)
	if n := clk.Timers(); n != 1 {
		t.Errorf("at 399 ms %d calls still wait, want 1 (the 400 ms turn)", n)
	}
	clk.Advance(time.Millisecond)
	for _, err := range wait() {
		t.Errorf("a call failed: %v", err)
	}
	if tr.Count() != 5 {
		t.Errorf("host saw %d, want 5", tr.Count())
	}
	var waits []time.Duration
	for _, ev := range sink.kinds(telemetry.RateLimitWait) {
		waits = append(waits, ev.Delay)
	}
	if len(waits) != 4 || clk.Now()-start != 400*time.Millisecond {
		t.Errorf("waits %v over %v, want four, the last ending at 400ms", waits, clk.Now()-start)
	}
}

// With the turn spent and a deadline sooner than the next turn, the call is
// refused at once rather than when its deadline passes.
func TestRateLimitRefusesTurnAfterDeadline(t *testing.T) {
	stage, _, _ := fakeLimit(resilient.RateLimitPolicy{Rate: 10, Burst: 1, MaxWait: time.Second})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	if _, err := call(t.Context(), rt, "http://api.test/"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := call(ctx, rt, "http://api.test/")
	el := time.Since(start)
	rle := mustRefuse(t, err)
	if rle.Err != nil || rle.Waited != 0 || rle.RetryAfter != 100*time.Millisecond {
		t.Errorf("refusal %+v, want at once with RetryAfter 100ms", rle)
	}
	if el >= 20*time.Millisecond {
		t.Errorf("refused after %v, want well before the 20ms deadline", el)
	}
	if tr.Count() != 1 {
		t.Errorf("host saw %d, want 1", tr.Count())
	}
}

// A call whose wait its context ends is refused with the context's error
// and hands its turn back to the next caller.
func TestRateLimitCancelledWaitGivesTurnBack(t *testing.T) {
	stage, clk, _ := fakeLimit(resilient.RateLimitPolicy{Rate: 10, Burst: 1, MaxWait: time.Second})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	if _, err := call(t.Context(), rt, "http://api.test/"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := call(ctx, rt, "http://api.test/")
		done <- err
	}()
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("the second call never waited")
	}
	cancel()
	if rle := mustRefuse(t, <-done); !errors.Is(rle, context.Canceled) {
		t.Errorf("refusal %v, want it to wrap context.Canceled", rle)
	}
	// The 100 ms turn is free again: a call now waits 100 ms, not 200.
	go func() {
		_, err := call(t.Context(), rt, "http://api.test/")
		done <- err
	}()
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("the third call never waited")
	}
	clk.Advance(100 * time.Millisecond)
	waiting := clk.Timers()
	clk.Advance(time.Second) // frees a broken limiter's caller too
	if err := <-done; err != nil || waiting != 0 {
		t.Fatalf("third call: %v; still waiting after 100ms: %d, want 0", err, waiting)
	}
}

func TestRateLimitHostsDoNotShare(t *testing.T) {
	stage, _, _ := fakeLimit(resilient.RateLimitPolicy{Rate: 2, Burst: 1})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	for _, u := range []string{"http://a.test/", "http://b.test/", "https://a.test/", "http://a.test:8080/"} {
		if _, err := call(t.Context(), rt, u); err != nil {
			t.Errorf("first call to %s: %v", u, err)
		}
	}
	_, err := call(t.Context(), rt, "http://a.test/x")
	mustRefuse(t, err)
}

func TestRateLimitCustomKey(t *testing.T) {
	stage, _, _ := fakeLimit(resilient.RateLimitPolicy{
		Rate: 1, Key: func(r *http.Request) string { return r.Header.Get("X-Tenant") },
	})
	rt := resilient.Chain(resilienttest.NewTransport(), stage)
	send := func(tenant, u string) error {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if send("a", "http://one.test/") != nil || send("b", "http://one.test/") != nil {
		t.Fatal("first calls of two tenants were refused")
	}
	rle := mustRefuse(t, send("a", "http://two.test/"))
	if rle.Key != "a" || rle.Authority != "http://two.test:80" {
		t.Errorf("Key %q, Authority %q, want a and http://two.test:80", rle.Key, rle.Authority)
	}
}

// fakeFleet answers TakeRate from a script and records its calls.
type fakeFleet struct {
	scriptFleet // no breaker verdicts
	mu          sync.Mutex
	calls       []string
	wait        time.Duration
	ok          bool
	err         error
}

func (f *fakeFleet) TakeRate(_ context.Context, key string, rate float64, burst int, maxWait time.Duration) (time.Duration, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %g/s burst %d wait %v", key, rate, burst, maxWait))
	return f.wait, f.ok, f.err
}

func TestRateLimitFleet(t *testing.T) {
	f := &fakeFleet{wait: 300 * time.Millisecond}
	stage, _, _ := fakeLimit(resilient.RateLimitPolicy{Rate: 5, Burst: 2, Fleet: f})
	tr := resilienttest.NewTransport()
	rt := resilient.Chain(tr, stage)
	rle := mustRefuse(t, func() error { _, err := call(t.Context(), rt, "http://api.test/"); return err }())
	if rle.RetryAfter != 300*time.Millisecond || tr.Count() != 0 {
		t.Errorf("fleet refusal %+v, host saw %d; want RetryAfter 300ms, nothing sent", rle, tr.Count())
	}
	if len(f.calls) != 1 || f.calls[0] != "http://api.test:80 5/s burst 2 wait 0s" {
		t.Errorf("fleet calls %q", f.calls)
	}
	// A fleet that fails leaves the process to its own limit: burst 2.
	f.err = errors.New("store away")
	for i := range 3 {
		_, err := call(t.Context(), rt, "http://api.test/")
		if (err == nil) != (i < 2) {
			t.Errorf("call %d with the store away: %v", i+1, err)
		}
	}
}

func TestRateLimitPolicyPanics(t *testing.T) {
	for _, tc := range []struct {
		field string
		p     resilient.RateLimitPolicy
	}{
		{"RateLimitPolicy.Rate", resilient.RateLimitPolicy{Rate: -1}},
		{"RateLimitPolicy.Rate", resilient.RateLimitPolicy{Rate: math.NaN()}},
		{"RateLimitPolicy.Rate", resilient.RateLimitPolicy{Rate: math.Inf(1)}},
		{"RateLimitPolicy.Burst", resilient.RateLimitPolicy{Rate: 1, Burst: -1}},
		{"RateLimitPolicy.MaxWait", resilient.RateLimitPolicy{MaxWait: -1}},
		{"RateLimitPolicy.MaxCoolDown", resilient.RateLimitPolicy{MaxCoolDown: -1}},
		{"RateLimitPolicy.MaxKeys", resilient.RateLimitPolicy{MaxKeys: -1}},
	} {
		for name, build := range map[string]func(){
			"RateLimit":     func() { resilient.RateLimit(tc.p) },
			"WithRateLimit": func() { resilient.WithRateLimit(tc.p) },
		} {
			func() {
				defer func() {
					msg, _ := recover().(string)
					if !strings.HasPrefix(msg, "resilient: ") || !strings.Contains(msg, tc.field) {
						t.Errorf("%s(%+v) panicked with %q, want a message naming %s", name, tc.p, msg, tc.field)
					}
				}()
				build()
			}()
		}
	}
}
