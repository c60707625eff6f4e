package resilient_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/resilienttest"
)

// FuzzRateLimitPolicy builds the stage from fuzzed fields, as the targets
// in policy_fuzz_test.go do, and runs it on a frozen fake clock: the first
// Burst calls go, the next is refused, and a 429 with Retry-After: 5 holds
// its host for min(5 s, MaxCoolDown) unless IgnoreRetryAfter.
func FuzzRateLimitPolicy(f *testing.F) {
	f.Add(0.0, 0, int64(0), int64(0), 0, false)
	f.Add(2.0, 1, int64(0), int64(0), 0, false)
	f.Add(100.0, 3, int64(time.Second), int64(time.Second), 1, false)
	f.Add(1e-300, 2, int64(math.MaxInt64), int64(math.MaxInt64), 0, true)
	f.Add(1e300, math.MaxInt32, int64(time.Millisecond), int64(1), 2, false)
	f.Add(math.NaN(), -1, int64(-1), int64(-1), -1, false)
	f.Add(math.Inf(1), 0, int64(0), int64(0), 0, false)
	f.Fuzz(func(t *testing.T, rate float64, burst int, maxWait, maxCoolDown int64, maxKeys int, ignore bool) {
		var broken brokenFields
		broken.need(rate >= 0 && !math.IsInf(rate, 1), "RateLimitPolicy.Rate") // false for NaN
		broken.need(burst >= 0, "RateLimitPolicy.Burst")
		broken.need(maxWait >= 0, "RateLimitPolicy.MaxWait")
		broken.need(maxCoolDown >= 0, "RateLimitPolicy.MaxCoolDown")
		broken.need(maxKeys >= 0, "RateLimitPolicy.MaxKeys")
		p := resilient.RateLimitPolicy{
			Rate: rate, Burst: burst, MaxWait: time.Duration(maxWait), MaxCoolDown: time.Duration(maxCoolDown),
			MaxKeys: maxKeys, IgnoreRetryAfter: ignore,
		}
		resilient.SetRateLimitClock(&p, clock.NewFake(time.Hour))
		var stage resilient.Middleware
		if !builds(t, broken, func() { stage = resilient.RateLimit(p) }) {
			return
		}
		tr := resilienttest.NewTransport(resilienttest.OnPath("/429",
			resilienttest.RetryAfter(5*time.Second), resilienttest.Status(429)))
		rt := resilient.Chain(tr, stage)
		send := func(u string) error { _, err := call(t.Context(), rt, u); return err }
		// A call whose deadline has passed may wait for nothing: it is
		// refused at once if its turn is not free (a wait on the frozen
		// clock would never end).
		past, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		sendLate := func(u string) error { _, err := call(past, rt, u); return err }

		// The first min(Burst, 3) calls go; the one after a whole burst is
		// refused. A burst longer than 73 years of the rate is cut (see
		// Burst), so there only the first call is sure to go.
		b := max(burst, 1)
		pass, next := 3, 1 // next: 1 the call after pass goes, 0 refused, -1 either
		switch {
		case rate > 0 && float64(b)/rate >= 2e9:
			pass, next = 1, -1
		case rate > 0 && b <= 3:
			pass, next = b, 0
		case rate > 0:
			next = 1
		}
		for i := range pass {
			if err := send("http://a.test/"); err != nil {
				t.Fatalf("call %d of a burst of %d: %v", i+1, burst, err)
			}
		}
		var err error
		if next == 1 {
			err = send("http://a.test/")
		} else {
			err = sendLate("http://a.test/")
		}
		if (next == 0 && !errors.Is(err, resilient.ErrRateLimited)) || (next == 1 && err != nil) {
			t.Fatalf("call %d at %g/s burst %d: %v", pass+1, rate, burst, err)
		}
		sent := tr.Count()

		if err := send("http://b.test/429"); err != nil {
			t.Fatalf("the 429 call: %v", err)
		}
		err = sendLate("http://b.test/")
		var rle *resilient.RateLimitedError
		if ignore {
			if errors.As(err, &rle) && rle.CoolDown {
				t.Fatalf("IgnoreRetryAfter, yet the host was held: %v", err)
			}
			return
		}
		want := min(5*time.Second, orDur(time.Duration(maxCoolDown), resilient.DefaultMaxRetryAfter))
		if !errors.As(err, &rle) || !rle.CoolDown || rle.RetryAfter != want {
			t.Fatalf("after a 429 with Retry-After 5: %v, want a cool-down of %v", err, want)
		}
		if tr.Count() != sent+1 {
			t.Fatalf("host saw %d requests, want %d: the held call is not sent", tr.Count(), sent+1)
		}
	})
}
