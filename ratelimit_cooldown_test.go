package resilient_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// A first response with a Retry-After holds the host's next calls off for
// as long as it says, capped, and only on 429 and 503.
func TestRateLimitCoolDown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy resilient.RateLimitPolicy
		status int
		header string // Retry-After; "date+2s" is the fake wall clock plus 2 s
		want   time.Duration
	}{
		{"429 seconds", resilient.RateLimitPolicy{}, 429, "1", time.Second},
		{"503 seconds", resilient.RateLimitPolicy{}, 503, "3", 3 * time.Second},
		{"429 date", resilient.RateLimitPolicy{}, 429, "date+2s", 2 * time.Second},
		{"capped at 30s", resilient.RateLimitPolicy{}, 429, "3600", 30 * time.Second},
		{"capped by MaxCoolDown", resilient.RateLimitPolicy{MaxCoolDown: 5 * time.Second}, 503, "60", 5 * time.Second},
		{"500 ignored", resilient.RateLimitPolicy{}, 500, "1", 0},
		{"429 without header", resilient.RateLimitPolicy{}, 429, "", 0},
		{"429 Retry-After 0", resilient.RateLimitPolicy{}, 429, "0", 0},
		{"garbage header", resilient.RateLimitPolicy{}, 429, "soon", 0},
		{"IgnoreRetryAfter", resilient.RateLimitPolicy{IgnoreRetryAfter: true}, 429, "1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stage, clk, sink := fakeLimit(tc.policy)
			header := tc.header
			if header == "date+2s" {
				header = clk.Wall().Add(2 * time.Second).Format(http.TimeFormat)
			}
			first := []resilienttest.Fault{resilienttest.Status(tc.status)}
			if header != "" {
				first = append([]resilienttest.Fault{resilienttest.Header("Retry-After", header)}, first...)
			}
			tr := resilienttest.NewTransport(resilienttest.OnRequests(1, 1, first...))
			rt := resilient.Chain(tr, stage)
			if code, err := call(t.Context(), rt, "http://api.test/"); err != nil || code != tc.status {
				t.Fatalf("first call: %d %v", code, err)
			}
			_, err := call(t.Context(), rt, "http://api.test/")
			if tc.want == 0 {
				if err != nil || tr.Count() != 2 {
					t.Fatalf("second call: %v, host saw %d; want no cool-down", err, tr.Count())
				}
				return
			}
			rle := mustRefuse(t, err)
			if !rle.CoolDown || rle.RetryAfter != tc.want || tr.Count() != 1 {
				t.Errorf("refusal %+v, host saw %d; want a %v cool-down, nothing sent", rle, tr.Count(), tc.want)
			}
			if evs := sink.kinds(telemetry.CoolDown); len(evs) != 1 || evs[0].Delay != tc.want {
				t.Errorf("CoolDown events %+v, want one of %v", evs, tc.want)
			}
			// Another host is not held.
			if _, err := call(t.Context(), rt, "http://other.test/"); err != nil {
				t.Errorf("a call to another host: %v", err)
			}
			clk.Advance(tc.want - 1)
			_, err = call(t.Context(), rt, "http://api.test/")
			mustRefuse(t, err)
			clk.Advance(1)
			if _, err := call(t.Context(), rt, "http://api.test/"); err != nil {
				t.Errorf("a call once the cool-down is over: %v", err)
			}
		})
	}
}

// Callers with a MaxWait wait the cool-down out and then go, in the rate's
// turn when there is a rate; those whose deadline is sooner are refused.
func TestRateLimitCoolDownWaits(t *testing.T) {
	stage, clk, _ := fakeLimit(resilient.RateLimitPolicy{Rate: 10, Burst: 1, MaxWait: 2 * time.Second})
	tr := resilienttest.NewTransport(resilienttest.OnRequests(1, 1,
		resilienttest.RetryAfter(time.Second), resilienttest.Status(503)))
	rt := resilient.Chain(tr, stage)
	if code, _ := call(t.Context(), rt, "http://api.test/"); code != 503 {
		t.Fatalf("first call got %d, want 503", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	rle := mustRefuse(t, func() error { _, err := call(ctx, rt, "http://api.test/"); return err }())
	if !rle.CoolDown || rle.Err != nil || rle.RetryAfter != time.Second {
		t.Errorf("refusal %+v, want the 1s cool-down at once: the deadline is sooner", rle)
	}

	wait := startCalls(t.Context(), rt, "http://api.test/", 2)
	if !clk.WaitTimers(2, 5*time.Second) {
		t.Fatal("the callers never waited")
	}
	clk.Advance(time.Second - 1)
	if tr.Count() != 1 {
		t.Errorf("host saw %d during the cool-down, want 1", tr.Count())
	}
	clk.Advance(1)
	// One goes now; the other takes the next turn of the rate, 100 ms on.
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("the second caller did not wait for its turn")
	}
	clk.Advance(100 * time.Millisecond)
	for _, err := range wait() {
		t.Errorf("a waiting caller: %v", err)
	}
	if tr.Count() != 3 {
		t.Errorf("host saw %d, want 3", tr.Count())
	}
}

// The call that got the 429 is retried by the Retry stage above after the
// same Retry-After: the cool-down it caused is over by then, so the retry
// goes out instead of being refused.
func TestRateLimitRetryOfThe429IsNotRefused(t *testing.T) {
	stage, clk, _ := fakeLimit(resilient.RateLimitPolicy{})
	rp := resilient.RetryPolicy{}
	// The retry's timer moves the stage's fake clock by exactly its wait.
	adv := &advancingClock{Fake: clk}
	resilient.SetRetryClock(&rp, adv)
	tr := resilienttest.NewTransport(resilienttest.OnRequests(1, 1,
		resilienttest.RetryAfter(time.Second), resilienttest.Status(429)))
	rt := resilient.Chain(tr, resilient.Retry(rp), stage)
	code, err := call(t.Context(), rt, "http://api.test/")
	if err != nil || code != 200 || tr.Count() != 2 {
		t.Fatalf("got %d %v, host saw %d; want the retry to reach the host and get 200", code, err, tr.Count())
	}
	if len(adv.slept) != 1 || adv.slept[0] != time.Second {
		t.Errorf("Retry adv.slept %v, want [1s]", adv.slept)
	}
}

// With NewClient, a host's 429 with Retry-After: 1 holds off every other
// caller of that host for that second; they send nothing during it, and
// their Retry stage takes them through after it.
func TestRateLimitStandardPipelineCoolDown(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.OnRequests(1, 1,
		resilienttest.RetryAfter(time.Second), resilienttest.Status(429)))
	// OnRetry runs once the 429 has passed the RateLimit stage below Retry:
	// from then on the host is cooling down.
	cooling := make(chan struct{})
	var once sync.Once
	client := resilient.NewClient(resilient.WithRetry(resilient.RetryPolicy{
		OnRetry: func(*http.Request, int, time.Duration, *http.Response, error) { once.Do(func() { close(cooling) }) },
	}))
	defer client.CloseIdleConnections()

	results := make(chan error, 9)
	var wg sync.WaitGroup
	get := func() {
		code, err := getStatus(t, client, srv.URL)
		if err == nil && code != 200 {
			err = errors.New(http.StatusText(code))
		}
		results <- err
	}
	wg.Go(get)
	<-cooling
	for range 8 {
		wg.Go(get)
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("a caller: %v", err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 10 {
		t.Fatalf("host saw %d requests, want 10: the 429, its retry, 8 callers", len(reqs))
	}
	// The cool-down starts when the client gets the 429, after the host
	// received request 1: nothing may arrive within a second of that.
	for _, r := range reqs[1:] {
		if gap := r.At.Sub(reqs[0].At); gap < time.Second {
			t.Errorf("request %d arrived %v after the one answered 429, want at least 1s", r.N, gap)
		}
	}
}

// advancingClock is a fake clock whose timers move it by their wait and
// fire at once, recording each wait.
type advancingClock struct {
	*clock.Fake
	slept []time.Duration
}

func (c *advancingClock) NewTimer(d time.Duration) clock.Timer {
	c.slept = append(c.slept, d)
	c.Advance(d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return firedTimer(ch)
}
