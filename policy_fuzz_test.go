package resilient_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// The policy fuzz targets feed numeric fields to the constructors. A policy
// either panics with "resilient: " and the name of a field it breaks, or
// builds a stage whose calls through an in-memory transport behave as the
// fields' docs say. Any other panic, and any other outcome, is a bug.

// brokenFields collects the fields a fuzzed policy breaks, by the rules the
// fields' docs state.
type brokenFields []string

func (b *brokenFields) need(ok bool, field string) {
	if !ok {
		*b = append(*b, field)
	}
}

// builds runs build and reports whether it returned. It fails t if a policy
// that breaks no field panics, if one that breaks a field does not, or if
// the panic is not a "resilient: " message naming one of the broken fields.
func builds(t *testing.T, broken brokenFields, build func()) bool {
	t.Helper()
	panicked, msg := true, any(nil)
	func() {
		defer func() { msg = recover() }()
		build()
		panicked = false
	}()
	if !panicked {
		if len(broken) > 0 {
			t.Fatalf("accepted a policy with bad %v", broken)
		}
		return true
	}
	s, ok := msg.(string)
	if !ok {
		t.Fatalf("panicked with %T %v, want a string naming one of %v", msg, msg, broken)
	}
	if len(broken) == 0 {
		t.Fatalf("a valid policy panicked: %s", s)
	}
	if !strings.HasPrefix(s, "resilient: ") {
		t.Fatalf("panic %q does not start with \"resilient: \"", s)
	}
	for _, f := range broken {
		if strings.Contains(s, f) {
			return false
		}
	}
	t.Fatalf("panic %q names none of the bad fields %v", s, broken)
	return false
}

// isToken reports whether s is an HTTP token, by net/http's own method check.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	_, err := http.NewRequest(s, "http://127.0.0.1/", nil)
	return err == nil
}

func orDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// fuzzedBudget is the budget a target runs with, and what it promises for
// one call in one time slice.
type fuzzedBudget struct {
	b *resilient.RetryBudget
	// floor is how many retries MinPerSecond always allows in a window;
	// ceil is more than one call may ever take.
	floor, ceil float64
}

// fuzzBudget makes the budget of mode%3: nil (the stage makes its own),
// unlimited, or one of the fuzzed fields on a frozen clock, so that a call
// stays in one time slice.
func fuzzBudget(broken *brokenFields, mode uint8, ratio float64, window int64, minPerSecond int) fuzzedBudget {
	switch mode % 3 {
	case 0:
		n, w := float64(resilient.DefaultBudgetMinPerSecond), resilient.DefaultBudgetWindow.Seconds()
		return fuzzedBudget{floor: n * w, ceil: n*w + 2*resilient.DefaultBudgetRatio + 1}
	case 1:
		return fuzzedBudget{b: &resilient.RetryBudget{Unlimited: true}, floor: math.Inf(1), ceil: math.Inf(1)}
	}
	broken.need(ratio >= 0 && ratio <= 100, "RetryBudget.Ratio") // false for NaN
	broken.need(window >= 0 && (window == 0 || window >= int64(10*time.Millisecond)), "RetryBudget.Window")
	broken.need(minPerSecond >= 0, "RetryBudget.MinPerSecond")
	b := &resilient.RetryBudget{Ratio: ratio, Window: time.Duration(window), MinPerSecond: minPerSecond}
	resilient.SetBudgetClock(b, func() time.Duration { return 0 })
	r := ratio
	if r == 0 {
		r = resilient.DefaultBudgetRatio
	}
	perWindow := float64(orInt(minPerSecond, resilient.DefaultBudgetMinPerSecond)) *
		orDur(time.Duration(window), resilient.DefaultBudgetWindow).Seconds()
	// A call earns Ratio retries, give or take the rounding of their cost.
	return fuzzedBudget{b: b, floor: math.Floor(perWindow), ceil: perWindow + 2*r + 1}
}

// roundTrip sends one bodiless request through rt.
func roundTrip(ctx context.Context, t *testing.T, rt http.RoundTripper, method string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1/fuzz", nil)
	if err != nil {
		t.Fatal(err)
	}
	return rt.RoundTrip(req)
}

func FuzzRetryPolicy(f *testing.F) {
	f.Add(0, int64(0), int64(0), int64(0), uint8(0), 0.0, int64(0), 0, uint8(2), uint32(0))
	f.Add(1, int64(0), int64(0), int64(0), uint8(1), 0.0, int64(0), 0, uint8(3), uint32(0))
	f.Add(5, int64(time.Millisecond), int64(time.Second), int64(time.Minute), uint8(2), 0.5, int64(time.Second), 1, uint8(3), uint32(2))
	f.Add(3, int64(0), int64(0), int64(time.Second), uint8(0), 0.0, int64(0), 0, uint8(1), uint32(10))
	f.Add(4, int64(0), int64(0), int64(0), uint8(2), 0.0, int64(10*time.Millisecond), 10, uint8(2), uint32(0))
	f.Add(-1, int64(-1), int64(-1), int64(-1), uint8(2), -1.0, int64(-1), -1, uint8(0), uint32(0))
	f.Add(2, int64(time.Second), int64(time.Millisecond), int64(0), uint8(2), 101.0, int64(time.Millisecond), 0, uint8(1), uint32(0))
	// Budgets past the edges of their packed integers (found by this target).
	f.Add(5, int64(0), int64(0), int64(0), uint8(2), 0.0, int64(0), math.MaxInt, uint8(3), uint32(0))
	f.Add(4, int64(0), int64(0), int64(0), uint8(2), 1e-10, int64(time.Second), 1, uint8(3), uint32(0))
	f.Add(4, int64(0), int64(0), int64(0), uint8(2), 1e-300, int64(10*time.Millisecond), 1, uint8(3), uint32(0))
	f.Fuzz(func(t *testing.T, maxAttempts int, initial, maxDelay, maxRetryAfter int64,
		budgetMode uint8, ratio float64, window int64, minPerSecond int, failures uint8, retryAfter uint32) {
		var broken brokenFields
		broken.need(maxAttempts >= 0, "RetryPolicy.MaxAttempts")
		broken.need(initial >= 0, "RetryPolicy.InitialDelay")
		broken.need(maxDelay >= 0, "RetryPolicy.MaxDelay")
		broken.need(maxRetryAfter >= 0, "RetryPolicy.MaxRetryAfter")
		effMax := orDur(time.Duration(maxDelay), resilient.DefaultMaxDelay)
		if initial >= 0 && maxDelay >= 0 {
			broken.need(orDur(time.Duration(initial), resilient.DefaultInitialDelay) <= effMax, "RetryPolicy.InitialDelay")
		}
		budget := fuzzBudget(&broken, budgetMode, ratio, window, minPerSecond)
		p := resilient.RetryPolicy{
			MaxAttempts: maxAttempts, InitialDelay: time.Duration(initial), MaxDelay: time.Duration(maxDelay),
			MaxRetryAfter: time.Duration(maxRetryAfter), Budget: budget.b,
		}
		timer := newFakeTimer()
		resilient.SetRetryClock(&p, timer)
		var stage resilient.Middleware
		if !builds(t, broken, func() { stage = resilient.Retry(p) }) {
			return
		}

		// The first k attempts get a 503, with Retry-After when asked.
		k := int(failures % 4)
		var fault resilienttest.Fault = resilienttest.FailFirst(k, http.StatusServiceUnavailable)
		raSecs := int64(retryAfter) - 1
		if raSecs >= 0 && k > 0 {
			fault = resilienttest.OnRequests(1, k,
				resilienttest.Header("Retry-After", strconv.FormatInt(raSecs, 10)),
				resilienttest.Status(http.StatusServiceUnavailable))
		}
		tr := resilienttest.NewTransport(fault)
		resp, err := roundTrip(t.Context(), t, resilient.Chain(tr, stage), http.MethodGet)
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		body := readBody(t, resp)

		want := min(k, orInt(maxAttempts, resilient.DefaultMaxAttempts)-1)
		tooLong := raSecs >= 0 && time.Duration(raSecs)*time.Second >
			orDur(time.Duration(maxRetryAfter), resilient.DefaultMaxRetryAfter)
		if tooLong {
			want = 0 // a Retry-After past MaxRetryAfter ends the call at once
		}
		retries := tr.Count() - 1
		switch {
		case float64(want) <= budget.floor && retries != want:
			t.Fatalf("%d retries, want %d (%d failures, budget floor %v)", retries, want, k, budget.floor)
		case retries > want || float64(retries) > budget.ceil:
			t.Fatalf("%d retries, want at most %d and at most the budget's %v", retries, want, budget.ceil)
		}
		wantStatus, wantBody := http.StatusOK, "OK"
		if retries < k {
			wantStatus, wantBody = http.StatusServiceUnavailable, http.StatusText(http.StatusServiceUnavailable)
		}
		if resp.StatusCode != wantStatus || body != wantBody {
			t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, wantStatus, wantBody)
		}

		for _, d := range timer.got() {
			if raSecs >= 0 && !tooLong {
				if d != time.Duration(raSecs)*time.Second {
					t.Fatalf("waited %v, want the Retry-After of %ds", d, raSecs)
				}
			} else if d <= 0 || d >= effMax {
				t.Fatalf("backoff delay %v outside (0, MaxDelay %v)", d, effMax)
			}
		}
	})
}

func FuzzBreakerPolicy(f *testing.F) {
	f.Add(0, 0, int64(0), int64(0), 0, 0, 0.0, 0.0, uint8(5))
	f.Add(3, 0, int64(0), int64(0), 0, 0, 0.0, 0.5, uint8(5))
	f.Add(0, 2, int64(time.Minute), int64(time.Hour), 2, 1, 1.0, 0.99, uint8(4))
	f.Add(2, 0, int64(time.Millisecond), int64(time.Nanosecond), 0, 0, 0.1, 0.0, uint8(3))
	f.Add(-1, -1, int64(-1), int64(-1), -1, -1, -0.5, 0.0, uint8(0))
	f.Add(0, 0, int64(0), int64(0), 0, 0, 1.5, 0.0, uint8(1))
	// Past uint32 counts (gobreaker's limit once), and an OpenTimeout
	// whose jitter would overflow (found by this target).
	f.Add(int(min(math.MaxInt, 1<<32)), 0, int64(0), int64(0), 0, 0, 0.0, 0.0, uint8(5))
	f.Add(0, 0, int64(time.Hour), int64(math.MaxInt64), 0, 0, 0.0, 0.5, uint8(5))
	f.Fuzz(func(t *testing.T, consecutive, minRequests int, window, openTimeout int64,
		halfOpen, maxKeys int, ratio, jitter float64, failures uint8) {
		var broken brokenFields
		broken.need(consecutive >= 0, "BreakerPolicy.ConsecutiveFailures")
		broken.need(minRequests >= 0, "BreakerPolicy.MinRequests")
		broken.need(window >= 0, "BreakerPolicy.Window")
		broken.need(openTimeout >= 0, "BreakerPolicy.OpenTimeout")
		broken.need(halfOpen >= 0, "BreakerPolicy.HalfOpenRequests")
		broken.need(maxKeys >= 0, "BreakerPolicy.MaxKeys")
		broken.need(ratio >= 0 && ratio <= 1, "BreakerPolicy.FailureRatio")
		p := resilient.BreakerPolicy{
			ConsecutiveFailures: consecutive, FailureRatio: ratio, MinRequests: minRequests,
			Window: time.Duration(window), OpenTimeout: time.Duration(openTimeout),
			HalfOpenRequests: halfOpen, MaxKeys: maxKeys,
		}
		jitter = math.Abs(jitter - math.Trunc(jitter)) // [0, 1), or NaN
		if math.IsNaN(jitter) {
			jitter = 0
		}
		resilient.SetBreakerJitter(&p, func() float64 { return jitter })
		var stage resilient.Middleware
		if !builds(t, broken, func() { stage = resilient.CircuitBreaker(p) }) {
			return
		}

		// k failing calls, then one that would succeed. All failures are
		// consecutive and the failure share is 1, so the breaker may trip
		// only once either count is reached, and must trip then if the
		// calls all fall in one window.
		k := int(failures % 6)
		tr := resilienttest.NewTransport(resilienttest.FailFirst(k, http.StatusInternalServerError))
		rt := resilient.Chain(tr, stage)
		tripAt := min(orInt(consecutive, 5), orInt(minRequests, 20))
		effOpen := orDur(time.Duration(openTimeout), 5*time.Second)
		longWindow := orDur(time.Duration(window), 10*time.Second) >= time.Minute
		for done := 0; done <= k; done++ {
			resp, err := roundTrip(t.Context(), t, rt, http.MethodGet)
			if done < tripAt {
				if err != nil {
					t.Fatalf("call %d (after %d failures, trips at %d): %v", done+1, done, tripAt, err)
				}
				readBody(t, resp)
				want := http.StatusInternalServerError
				if done == k {
					want = http.StatusOK
				}
				if resp.StatusCode != want {
					t.Fatalf("call %d: status %d, want %d", done+1, resp.StatusCode, want)
				}
				continue
			}
			if err == nil {
				readBody(t, resp)
			}
			if !longWindow || effOpen < time.Minute {
				return // the window may have rolled, or the breaker be half-open
			}
			var open *resilient.CircuitOpenError
			if !errors.As(err, &open) || !errors.Is(err, resilient.ErrCircuitOpen) {
				t.Fatalf("call %d after %d failures (trips at %d): %v, want a *CircuitOpenError", done+1, done, tripAt, err)
			}
			if open.ProbeIn <= 0 || float64(open.ProbeIn) > 1.1*float64(effOpen) {
				t.Fatalf("ProbeIn %v, want in (0, %.0fs] for OpenTimeout %v", open.ProbeIn, 1.1*effOpen.Seconds(), effOpen)
			}
			return
		}
	})
}

func FuzzBulkheadPolicy(f *testing.F) {
	f.Add(0, int64(0), 0, 0)
	f.Add(1, int64(0), 0, 0)
	f.Add(2, int64(time.Millisecond), 1, 1)
	f.Add(3, int64(time.Hour), 0, 0)
	f.Add(-1, int64(-1), -1, -1)
	f.Fuzz(func(t *testing.T, maxConcurrent int, maxWait int64, maxQueue, maxKeys int) {
		var broken brokenFields
		broken.need(maxConcurrent >= 0, "BulkheadPolicy.MaxConcurrent")
		broken.need(maxWait >= 0, "BulkheadPolicy.MaxWait")
		broken.need(maxQueue >= 0, "BulkheadPolicy.MaxQueue")
		broken.need(maxKeys >= 0, "BulkheadPolicy.MaxKeys")
		p := resilient.BulkheadPolicy{
			MaxConcurrent: maxConcurrent, MaxWait: time.Duration(maxWait), MaxQueue: maxQueue, MaxKeys: maxKeys,
		}
		var stage resilient.Middleware
		if !builds(t, broken, func() { stage = resilient.Bulkhead(p) }) {
			return
		}

		// Hold up to three slots with unread bodies: one call more gets a
		// slot only if the pool has a fourth.
		rt := resilient.Chain(resilienttest.NewTransport(), stage)
		size := orInt(maxConcurrent, 256)
		held := make([]*http.Response, 0, 3)
		defer func() {
			for _, r := range held {
				_ = r.Body.Close()
			}
		}()
		for range min(size, 3) {
			resp, err := roundTrip(t.Context(), t, rt, http.MethodGet)
			if err != nil {
				t.Fatalf("call %d of a pool of %d: %v", len(held)+1, size, err)
			}
			held = append(held, resp)
		}
		if size > len(held) {
			resp, err := roundTrip(t.Context(), t, rt, http.MethodGet)
			if err != nil {
				t.Fatalf("call %d of a pool of %d: %v", len(held)+1, size, err)
			}
			readBody(t, resp)
		} else {
			// A MaxWait wait ends with this context at the latest.
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			_, err := roundTrip(ctx, t, rt, http.MethodGet)
			cancel()
			if !errors.Is(err, resilient.ErrBulkheadFull) {
				t.Fatalf("call %d of a full pool of %d: %v, want ErrBulkheadFull", len(held)+1, size, err)
			}
		}
		// The held slots come back when their bodies are closed.
		for _, r := range held {
			_ = r.Body.Close()
		}
		held = held[:0]
		resp, err := roundTrip(t.Context(), t, rt, http.MethodGet)
		if err != nil {
			t.Fatalf("a call after the slots were released: %v", err)
		}
		readBody(t, resp)
	})
}

func FuzzHedgePolicy(f *testing.F) {
	f.Add(int64(0), 0, uint8(0), 0.0, int64(0), 0, uint16(0))
	f.Add(int64(time.Microsecond), 2, uint8(1), 0.0, int64(0), 0, uint16(300))
	f.Add(int64(50*time.Microsecond), 3, uint8(2), 1.0, int64(time.Second), 1, uint16(400))
	f.Add(int64(-1), -1, uint8(2), math.NaN(), int64(time.Microsecond), -1, uint16(0))
	f.Fuzz(func(t *testing.T, delay int64, maxHedges int, budgetMode uint8, ratio float64,
		window int64, minPerSecond int, latencyMicros uint16) {
		var broken brokenFields
		broken.need(delay >= 0, "HedgePolicy.Delay")
		broken.need(maxHedges >= 0, "HedgePolicy.MaxHedges")
		budget := fuzzBudget(&broken, budgetMode, ratio, window, minPerSecond)
		p := resilient.HedgePolicy{Delay: time.Duration(delay), MaxHedges: maxHedges, Budget: budget.b}
		var stage resilient.Middleware
		if !builds(t, broken, func() { stage = resilient.Hedge(p) }) {
			return
		}

		latency := time.Duration(latencyMicros%500) * time.Microsecond
		tr := resilienttest.NewTransport(resilienttest.Latency(latency))
		resp, err := roundTrip(t.Context(), t, resilient.Chain(tr, stage), http.MethodGet)
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "OK" {
			t.Fatalf("got %d %q, want 200 \"OK\"", resp.StatusCode, body)
		}
		hedges := tr.Count() - 1
		if hedges > orInt(maxHedges, resilient.DefaultMaxHedges) || float64(hedges) > budget.ceil {
			t.Fatalf("%d hedges, want at most MaxHedges %d and the budget's %v", hedges, maxHedges, budget.ceil)
		}
	})
}

func FuzzTimeout(f *testing.F) {
	f.Add(int64(time.Second), uint16(0))
	f.Add(int64(time.Microsecond), uint16(300))
	f.Add(int64(0), uint16(0))
	f.Add(int64(-time.Second), uint16(0))
	f.Fuzz(func(t *testing.T, d int64, latencyMicros uint16) {
		var broken brokenFields
		broken.need(d > 0, "Timeout")
		var stage resilient.Middleware
		if !builds(t, broken, func() { stage = resilient.Timeout(time.Duration(d)) }) {
			return
		}

		latency := time.Duration(latencyMicros%500) * time.Microsecond
		rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Latency(latency)), stage)
		roomy := time.Duration(d) >= latency+time.Second
		resp, err := roundTrip(t.Context(), t, rt, http.MethodGet)
		if err != nil {
			if roomy || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Timeout(%v) over a %v call: %v", time.Duration(d), latency, err)
			}
			return
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		switch {
		case err == nil && string(b) != "OK":
			t.Fatalf("body %q, want \"OK\"", b)
		case err != nil && (roomy || !errors.Is(err, context.DeadlineExceeded)):
			t.Fatalf("Timeout(%v): reading the body: %v", time.Duration(d), err)
		}
	})
}

func FuzzIdempotencyPolicy(f *testing.F) {
	f.Add("", "")
	f.Add("X-Request-Key", "POST,PUT")
	f.Add("idempotency-key", "PATCH")
	f.Add("Bad Header", "POST")
	f.Add("", "POST,,GET")
	f.Add("Key\n", "post")
	f.Fuzz(func(t *testing.T, header, methodList string) {
		var methods []string
		if methodList != "" {
			methods = strings.Split(methodList, ",")
		}
		var broken brokenFields
		broken.need(header == "" || isToken(header), "IdempotencyPolicy.Header")
		for _, m := range methods {
			broken.need(isToken(m), "IdempotencyPolicy.Methods")
		}
		var stage resilient.Middleware
		p := resilient.IdempotencyPolicy{Header: header, Methods: methods}
		if !builds(t, broken, func() { stage = resilient.IdempotencyKey(p) }) {
			return
		}

		key := http.CanonicalHeaderKey(header)
		if header == "" {
			key = resilient.DefaultIdempotencyHeader
		}
		if len(methods) == 0 {
			methods = []string{http.MethodPost, http.MethodPatch}
		}
		keyed := map[string]bool{}
		for _, m := range methods {
			keyed[m] = true
		}
		// Every listed method gets a key, and one method not listed none.
		tryMethods := methods[:min(len(methods), 3)]
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, "QUERY"} {
			if !keyed[m] {
				tryMethods = append(tryMethods, m)
				break
			}
		}
		tr := resilienttest.NewTransport()
		rt := resilient.Chain(tr, stage)
		for i, m := range tryMethods {
			resp, err := roundTrip(t.Context(), t, rt, m)
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			readBody(t, resp)
			got := tr.Requests()[i].Header.Values(key)
			if keyed[m] && (len(got) != 1 || got[0] == "") {
				t.Fatalf("%s with Methods %q: %s = %q, want one key", m, methods, key, got)
			}
			if !keyed[m] && len(got) != 0 {
				t.Fatalf("%s with Methods %q: %s = %q, want none", m, methods, key, got)
			}
		}
	})
}

// FuzzPipelineTimeouts fuzzes the standard pipeline's timeout options
// together with the bulkhead's wait, which decide whether Retry enforces
// the total itself: whatever they are, a call to a dependency that never
// answers ends with the total timeout, and soon.
func FuzzPipelineTimeouts(f *testing.F) {
	f.Add(int64(10*time.Second), uint8(20), int64(0))
	f.Add(int64(time.Millisecond), uint8(50), int64(time.Millisecond))
	f.Add(int64(math.MaxInt64), uint8(10), int64(time.Nanosecond)) // overflowed the fuse check
	f.Add(int64(5*time.Millisecond), uint8(0), int64(math.MaxInt64))
	f.Add(int64(0), uint8(10), int64(0))
	f.Add(int64(time.Second), uint8(10), int64(-1))
	f.Fuzz(func(t *testing.T, attempt int64, totalMillis uint8, maxWait int64) {
		// The total stays short so that every input runs fast; the attempt
		// timeout and the wait range over everything.
		total := time.Duration(totalMillis%100+1) * time.Millisecond
		var broken brokenFields
		broken.need(attempt > 0, "WithAttemptTimeout")
		broken.need(maxWait >= 0, "BulkheadPolicy.MaxWait")
		var rt http.RoundTripper
		if !builds(t, broken, func() {
			rt = resilient.NewTransport(resilienttest.NewTransport(resilienttest.Hang()),
				resilient.WithTotalTimeout(total),
				resilient.WithAttemptTimeout(time.Duration(attempt)),
				resilient.WithBulkhead(resilient.BulkheadPolicy{MaxWait: time.Duration(maxWait)}),
				resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}))
		}) {
			return
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := roundTrip(ctx, t, rt, http.MethodGet)
		took := time.Since(start)
		if resp != nil {
			resp.Body.Close()
			t.Fatalf("got %s from a dependency that never answers", resp.Status)
		}
		var te *resilient.TimeoutError
		if !errors.As(err, &te) || te.After != min(total, time.Duration(attempt)) && te.After != total {
			t.Fatalf("total %v, attempt %v, wait %v: got %v, want a timeout", total, time.Duration(attempt), time.Duration(maxWait), err)
		}
		if took > total+5*time.Second {
			t.Fatalf("total %v, attempt %v, wait %v: took %v", total, time.Duration(attempt), time.Duration(maxWait), took)
		}
	})
}
