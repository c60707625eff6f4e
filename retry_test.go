package resilient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// fakeTimer is a clock whose timers record the delay they were started
// with and fire at once; the rest is the real clock.
type fakeTimer struct {
	clock.Clock
	mu     sync.Mutex
	delays []time.Duration
}

func newFakeTimer() *fakeTimer { return &fakeTimer{Clock: clock.Real} }

func (f *fakeTimer) NewTimer(d time.Duration) clock.Timer {
	f.mu.Lock()
	f.delays = append(f.delays, d)
	f.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return firedTimer(c)
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time { return t }
func (firedTimer) Stop() bool            { return false }

func (f *fakeTimer) got() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.delays...)
}

func fastPolicy(p resilient.RetryPolicy) (resilient.RetryPolicy, *fakeTimer, *recordSink) {
	ft, rec := newFakeTimer(), &recordSink{}
	resilient.SetRetryClock(&p, ft)
	resilient.SetRetrySink(&p, rec)
	return p, ft, rec
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// attempts counts the attempts that reach the stage below Retry and the
// attempt number each carries.
type attempts struct {
	mu  sync.Mutex
	nos []int
}

func (a *attempts) stage(next http.RoundTripper) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		a.mu.Lock()
		a.nos = append(a.nos, telemetry.AttemptFrom(r.Context()))
		a.mu.Unlock()
		return next.RoundTrip(r)
	})
}

func (a *attempts) n() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.nos)
}

// retryClient sends through Retry(p) and then the given inner stages over a
// fresh transport.
func retryClient(t *testing.T, p resilient.RetryPolicy, inner ...resilient.Middleware) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: resilient.Chain(tr, append([]resilient.Middleware{resilient.Retry(p)}, inner...)...)}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func TestRetryTwo503sThenOKOnOneConnection(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(2, 503), resilienttest.Respond(200, "response 3"))
	p, ft, rec := fastPolicy(resilient.RetryPolicy{})
	var seen []int
	p.OnRetry = func(req *http.Request, n int, d time.Duration, resp *http.Response, err error) {
		if resp == nil || resp.StatusCode != 503 || err != nil {
			t.Errorf("OnRetry(%d) got %v, %v; want the 503", n, resp, err)
		}
		seen = append(seen, n)
	}
	var at attempts
	c := retryClient(t, p, at.stage)

	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); resp.StatusCode != 200 || got != "response 3" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, "response 3")
	}
	if srv.Count() != 3 || srv.Conns() != 1 {
		t.Errorf("%d requests over %d connections, want 3 over 1", srv.Count(), srv.Conns())
	}
	if fmt.Sprint(at.nos) != "[1 2 3]" || fmt.Sprint(seen) != "[1 2]" {
		t.Errorf("attempt numbers below %v, OnRetry %v; want [1 2 3], [1 2]", at.nos, seen)
	}
	if d := ft.got(); len(d) != 2 || d[0] >= 100*time.Millisecond || d[1] >= 200*time.Millisecond {
		t.Errorf("delays %v, want two full-jitter delays under 100ms and 200ms", d)
	}
	if n := rec.count(telemetry.Retry); n != 2 {
		t.Errorf("%d retry events, want 2", n)
	}
}

func TestRetryExhaustedReturnsLastResponse(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.OnRequests(4, 4, resilienttest.Respond(503, "response 4")),
		resilienttest.Respond(503, "an earlier response"))
	p, _, _ := fastPolicy(resilient.RetryPolicy{MaxAttempts: 4})
	resp, err := retryClient(t, p).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); resp.StatusCode != 503 || got != "response 4" {
		t.Errorf("got %d %q, want the last 503 with its body", resp.StatusCode, got)
	}
	if srv.Count() != 4 {
		t.Errorf("%d requests, want 4", srv.Count())
	}
}

func TestRetryStatuses(t *testing.T) {
	for _, tc := range []struct {
		code  int
		retry bool
	}{
		{408, true}, {429, true}, {500, true}, {502, true}, {503, true}, {504, true},
		{200, false}, {204, false}, {301, false}, {400, false}, {401, false}, {403, false},
		{404, false}, {409, false}, {422, false}, {501, false}, {505, false},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			srv := resilienttest.NewServer(t, resilienttest.FailFirst(1, tc.code))
			p, _, _ := fastPolicy(resilient.RetryPolicy{})
			resp, err := retryClient(t, p).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			want, wantCode := 1, tc.code
			if tc.retry {
				want, wantCode = 2, 200
			}
			if srv.Count() != want || resp.StatusCode != wantCode {
				t.Errorf("%d requests ending in %d, want %d ending in %d", srv.Count(), resp.StatusCode, want, wantCode)
			}
		})
	}
}

// keysAndBodies lists each request the server got as "<idempotency key>|<body>".
func keysAndBodies(srv *resilienttest.Server) []string {
	var got []string
	for _, r := range srv.Requests() {
		got = append(got, r.Header.Get("Idempotency-Key")+r.Header.Get("X-Idempotency-Key")+"|"+string(r.Body))
	}
	return got
}

func TestRetryPOSTWithoutKeySentOnce(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(1, 503))
	p, _, _ := fastPolicy(resilient.RetryPolicy{})
	resp, err := retryClient(t, p).Post(srv.URL, "text/plain", strings.NewReader("charge"))
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if got := keysAndBodies(srv); resp.StatusCode != 503 || fmt.Sprint(got) != "[|charge]" {
		t.Errorf("status %d, server saw %v; want the 503 after one request", resp.StatusCode, got)
	}
}

func TestRetryPOSTWithKeyReplaysKeyAndBody(t *testing.T) {
	for _, h := range []string{"Idempotency-Key", "X-Idempotency-Key"} {
		t.Run(h, func(t *testing.T) {
			srv := resilienttest.NewServer(t,
				resilienttest.OnRequests(1, 1, resilienttest.Status(503)),
				resilienttest.OnRequests(2, 2, resilienttest.Status(502)))
			p, _, _ := fastPolicy(resilient.RetryPolicy{})
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("charge 10"))
			req.Header.Set(h, "k-123")
			resp, err := retryClient(t, p).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			want := "[k-123|charge 10 k-123|charge 10 k-123|charge 10]"
			if got := keysAndBodies(srv); resp.StatusCode != 200 || fmt.Sprint(got) != want {
				t.Errorf("status %d, server saw %v; want 200 after %s", resp.StatusCode, got, want)
			}
		})
	}
}

// onceReader is a body net/http cannot rewind (no GetBody).
type onceReader struct{ io.Reader }

func TestRetryUnreplayableBodySentOnce(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(1, 503))
	p, _, _ := fastPolicy(resilient.RetryPolicy{})
	req, _ := http.NewRequest(http.MethodPut, srv.URL, onceReader{strings.NewReader("stream")})
	resp, err := retryClient(t, p).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if got := keysAndBodies(srv); resp.StatusCode != 503 || fmt.Sprint(got) != "[|stream]" {
		t.Errorf("status %d, server saw %v; want the 503 after one full body", resp.StatusCode, got)
	}
}

func TestRetryGetBodyFailureReturnsLastResponse(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.OnRequests(1, 1, resilienttest.Respond(503, "response 1")))
	p, _, _ := fastPolicy(resilient.RetryPolicy{})
	req, _ := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader("x"))
	req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
	resp, err := retryClient(t, p).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); resp.StatusCode != 503 || got != "response 1" || srv.Count() != 1 {
		t.Errorf("got %d %q after %d requests, want the first 503", resp.StatusCode, got, srv.Count())
	}
}

// retryAfterServer answers the first request with code, "slow down" and the
// Retry-After header retryAfter sets, and the others with 200 "OK".
func retryAfterServer(t *testing.T, code int, retryAfter resilienttest.Fault) *resilienttest.Server {
	t.Helper()
	return resilienttest.NewServer(t, resilienttest.OnRequests(1, 1, retryAfter, resilienttest.Respond(code, "slow down")))
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       int
		retryAfter func() resilienttest.Fault // called just before the request
		min, max   time.Duration
	}{
		{"seconds on 503", 503, func() resilienttest.Fault { return resilienttest.RetryAfter(7 * time.Second) },
			7 * time.Second, 7 * time.Second},
		{"seconds on 429", 429, func() resilienttest.Fault { return resilienttest.RetryAfter(0) }, 0, 0},
		{"date on 429", 429, func() resilienttest.Fault { return resilienttest.RetryAfterDate(time.Now().Add(10 * time.Second)) },
			8 * time.Second, 10 * time.Second},
		{"past date", 503, func() resilienttest.Fault {
			return resilienttest.RetryAfterDate(time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC))
		}, 0, 0},
		{"ignored on 500", 500, func() resilienttest.Fault { return resilienttest.RetryAfter(20 * time.Second) },
			0, 100 * time.Millisecond},
		{"garbage", 503, func() resilienttest.Fault { return resilienttest.Header("Retry-After", "soon") },
			0, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := retryAfterServer(t, tc.code, tc.retryAfter())
			p, ft, rec := fastPolicy(resilient.RetryPolicy{})
			resp, err := retryClient(t, p).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if got := readBody(t, resp); got != "OK" || srv.Count() != 2 {
				t.Fatalf("got %q after %d requests, want OK after 2", got, srv.Count())
			}
			d := ft.got()
			if len(d) > 1 || len(d) == 1 && (d[0] < tc.min || d[0] > tc.max) || len(d) == 0 && tc.min > 0 {
				t.Errorf("waited %v, want one wait in [%v, %v]", d, tc.min, tc.max)
			}
			wantEv := 0
			if tc.max == tc.min || tc.min > 0 {
				wantEv = 1
			}
			if n := rec.count(telemetry.RetryAfter); n != wantEv {
				t.Errorf("%d RetryAfter events, want %d", n, wantEv)
			}
		})
	}
}

func TestRetryAfterTooLongReturnedAtOnce(t *testing.T) {
	for _, v := range []string{"3600", "31", "99999999999999999999999", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)} {
		t.Run(v, func(t *testing.T) {
			srv := retryAfterServer(t, 503, resilienttest.Header("Retry-After", v))
			p, ft, _ := fastPolicy(resilient.RetryPolicy{})
			resp, err := retryClient(t, p).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if got := readBody(t, resp); resp.StatusCode != 503 || got != "slow down" || srv.Count() != 1 || len(ft.got()) != 0 {
				t.Errorf("got %d %q after %d requests and waits %v, want the 503 at once",
					resp.StatusCode, got, srv.Count(), ft.got())
			}
		})
	}
}

func TestRetryCancelDuringBackoff(t *testing.T) {
	srv := retryAfterServer(t, 503, resilienttest.RetryAfter(20*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(0)
	p := resilient.RetryPolicy{}
	resilient.SetRetryClock(&p, clk)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	done := make(chan error, 1)
	go func() {
		resp, err := retryClient(t, p).Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("the stage never started its 20s wait")
	}
	cancel() // with the fake clock still at the wait's start
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancel during the wait did not end it")
	}
	if srv.Count() != 1 {
		t.Errorf("%d requests, want 1", srv.Count())
	}
}

func TestRetryDeadlineAwareBackoff(t *testing.T) {
	cases := []struct {
		name  string
		code  int
		p     resilient.RetryPolicy
		outer []resilient.Middleware
		ctx   time.Duration
	}{
		{"Retry-After past caller deadline", 503, resilient.RetryPolicy{}, nil, 300 * time.Millisecond},
		{"backoff past caller deadline", 500, resilient.RetryPolicy{
			BackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) },
		}, nil, 300 * time.Millisecond},
		{"backoff past total timeout", 500, resilient.RetryPolicy{
			BackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) },
		}, []resilient.Middleware{resilient.Timeout(300 * time.Millisecond)}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := retryAfterServer(t, tc.code, resilienttest.RetryAfter(time.Second))
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: resilient.Chain(tr, append(tc.outer, resilient.Retry(tc.p))...)}
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if got := readBody(t, resp); resp.StatusCode != tc.code || got != "slow down" || srv.Count() != 1 {
				t.Errorf("got %d %q after %d requests, want the first response", resp.StatusCode, got, srv.Count())
			}
			if el > 250*time.Millisecond {
				t.Errorf("took %v, want an answer before the deadline", el)
			}
		})
	}
}

func TestRetryCallerDeadlineNotRetried(t *testing.T) {
	var at attempts
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	p, _, _ := fastPolicy(resilient.RetryPolicy{})
	resp, err := retryClient(t, p, at.stage).Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) || at.n() != 1 || srv.Count() != 1 {
		t.Errorf("got %v after %d attempts (%d requests), want the caller's deadline after 1", err, at.n(), srv.Count())
	}
}

func TestRetryCallerCancelDuringAttemptReturnsResponse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := &http.Response{StatusCode: 503, Body: http.NoBody}
	base := rtFunc(func(*http.Request) (*http.Response, error) { cancel(); return want, nil })
	var at attempts
	// Even a ShouldRetry that retries everything cannot retry past the
	// caller's cancel.
	p, _, _ := fastPolicy(resilient.RetryPolicy{ShouldRetry: func(*http.Request, *http.Response, error) bool { return true }})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x/", nil)
	got, err := resilient.Chain(base, resilient.Retry(p), at.stage).RoundTrip(req)
	if got != want || err != nil || at.n() != 1 {
		t.Errorf("got %v, %v after %d attempts, want the response after 1", got, err, at.n())
	}
}

func TestRetryAttemptTimeoutRetried(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.OnRequests(1, 1, resilienttest.Hang()))
	p, _, _ := fastPolicy(resilient.RetryPolicy{})
	resp, err := retryClient(t, p, resilient.Timeout(50*time.Millisecond)).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); got != "OK" || srv.Count() != 2 {
		t.Errorf("got %q after %d requests, want OK after 2", got, srv.Count())
	}
}

func TestRetryDroppedConnectionRetried(t *testing.T) {
	// Each reset ends its connection, so no attempt rides a reused one and
	// net/http never resends on its own: the server sees every attempt.
	srv := resilienttest.NewServer(t, resilienttest.OnRequests(1, 2, resilienttest.ResetConn()))
	var at attempts
	p, _, _ := fastPolicy(resilient.RetryPolicy{})
	resp, err := retryClient(t, p, at.stage).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); got != "OK" || at.n() != 3 || srv.Count() != 3 {
		t.Errorf("got %q after %d attempts (%d requests), want OK after 3", got, at.n(), srv.Count())
	}
}

func TestRetryUntrustedCertificateOneHandshake(t *testing.T) {
	srv := resilienttest.NewTLSServer(t)
	p, _, _ := fastPolicy(resilient.RetryPolicy{MaxAttempts: 5})
	resp, err := retryClient(t, p).Get(srv.URL)
	if resp != nil {
		resp.Body.Close()
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("got %v, want a certificate verification error", err)
	}
	if srv.Conns() != 1 || srv.Count() != 0 {
		t.Errorf("%d connections and %d requests, want 1 handshake and no request", srv.Conns(), srv.Count())
	}
}

func TestRetryNeverRetriesRejections(t *testing.T) {
	for _, cause := range []error{
		resilient.ErrCircuitOpen,
		fmt.Errorf("breaker for http://x:80: %w", resilient.ErrBulkheadFull),
	} {
		var calls int
		base := rtFunc(func(*http.Request) (*http.Response, error) { calls++; return nil, cause })
		p, _, _ := fastPolicy(resilient.RetryPolicy{ShouldRetry: func(*http.Request, *http.Response, error) bool { return true }})
		req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		_, err := resilient.Chain(base, resilient.Retry(p)).RoundTrip(req)
		if !errors.Is(err, cause) || calls != 1 {
			t.Errorf("%v: got %v after %d calls, want it at once", cause, err, calls)
		}
	}
}

func TestRetryHappyPathPassesRequestAndResponseThrough(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	want := &http.Response{StatusCode: 200, Body: http.NoBody}
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		if r != req {
			t.Error("the first attempt is not the caller's request")
		}
		return want, nil
	})
	got, err := resilient.Chain(base, resilient.Retry(resilient.RetryPolicy{})).RoundTrip(req)
	if got != want || err != nil {
		t.Errorf("got %p, %v; want the response untouched", got, err)
	}
}

func TestRetryBackOffStopAndJitterBounds(t *testing.T) {
	base := resilienttest.NewTransport(resilienttest.Status(503))
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)

	var calls int
	p, _, _ := fastPolicy(resilient.RetryPolicy{MaxAttempts: 5, BackOff: func() backoff.BackOff {
		calls++
		return &backoff.StopBackOff{}
	}})
	var at attempts
	resp, _ := resilient.Chain(base, resilient.Retry(p), at.stage).RoundTrip(req)
	if resp.StatusCode != 503 || at.n() != 1 || base.Count() != 1 || calls != 1 {
		t.Errorf("backoff.Stop: %d attempts, %d BackOffs; want 1 and 1", at.n(), calls)
	}
	resp.Body.Close()

	p, ft, _ := fastPolicy(resilient.RetryPolicy{MaxAttempts: 7, InitialDelay: 10 * time.Millisecond, MaxDelay: 30 * time.Millisecond})
	for range 20 {
		if resp, err := resilient.Chain(base, resilient.Retry(p)).RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}
	caps := []time.Duration{10, 20, 30, 30, 30, 30}
	d := ft.got()
	for i, v := range d {
		if c := caps[i%len(caps)] * time.Millisecond; v < 0 || v >= c {
			t.Errorf("retry %d waited %v, want [0, %v)", i%len(caps)+1, v, c)
		}
	}
	if len(d) != 20*len(caps) || base.Count() != 1+20*7 {
		t.Errorf("%d waits over %d requests, want %d over %d", len(d), base.Count(), 20*len(caps), 1+20*7)
	}
}

func TestRetryBudgetRefuses(t *testing.T) {
	b := &resilient.RetryBudget{Ratio: 1, MinPerSecond: 1} // a reserve of 10 retries
	resilient.SetBudgetClock(b, func() time.Duration { return 0 })
	base := resilienttest.NewTransport(resilienttest.Status(503))
	var at attempts
	p, _, rec := fastPolicy(resilient.RetryPolicy{MaxAttempts: 100, Budget: b})
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	resp, err := resilient.Chain(base, resilient.Retry(p), at.stage).RoundTrip(req)
	// The call earns one retry on top of the reserve of 10.
	if err != nil || resp.StatusCode != 503 || at.n() != 12 || base.Count() != 12 {
		t.Errorf("got %v, %v after %d attempts, want the 503 after 12", resp, err, at.n())
	}
	if err == nil {
		resp.Body.Close()
	}
	if n := rec.count(telemetry.BudgetExhausted); n != 1 {
		t.Errorf("%d BudgetExhausted events, want 1", n)
	}
}

func TestRetryPolicyPanics(t *testing.T) {
	for field, p := range map[string]resilient.RetryPolicy{
		"MaxAttempts":   {MaxAttempts: -1},
		"InitialDelay":  {InitialDelay: -time.Second},
		"MaxDelay":      {MaxDelay: -1},
		"MaxRetryAfter": {MaxRetryAfter: -1},
		"InitialDelay ": {InitialDelay: time.Minute},
		"Ratio":         {Budget: &resilient.RetryBudget{Ratio: -0.5}},
		"Window":        {Budget: &resilient.RetryBudget{Window: -time.Second}},
		"MinPerSecond":  {Budget: &resilient.RetryBudget{MinPerSecond: -1}},
	} {
		for name, build := range map[string]func(){
			"Retry":     func() { resilient.Retry(p) },
			"WithRetry": func() { resilient.WithRetry(p) },
		} {
			func() {
				defer func() {
					msg, _ := recover().(string)
					if !strings.HasPrefix(msg, "resilient: R") || !strings.Contains(msg, "."+strings.TrimSpace(field)+" ") {
						t.Errorf("%s(%+v) panicked with %q, want a message naming %s", name, p, msg, field)
					}
				}()
				build()
			}()
		}
	}
}

func TestRetryOneAttemptIsNoStage(t *testing.T) {
	base := resilienttest.NewTransport()
	if rt := resilient.Retry(resilient.RetryPolicy{MaxAttempts: 1})(base); rt != http.RoundTripper(base) {
		t.Errorf("MaxAttempts 1 added a stage")
	}
}

func TestWithRetryInStandardPipeline(t *testing.T) {
	for _, tc := range []struct {
		opts []resilient.Option
		want int
		hits int
	}{
		{[]resilient.Option{resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond})}, 200, 3},
		{[]resilient.Option{resilient.Without(resilient.StageRetry)}, 503, 1},
		{[]resilient.Option{resilient.WithRetry(resilient.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond})}, 503, 2},
	} {
		srv := resilienttest.NewServer(t, resilienttest.FailFirst(2, 503))
		tr := &http.Transport{}
		c := &http.Client{Transport: resilient.NewTransport(tr, tc.opts...)}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if resp.StatusCode != tc.want || srv.Count() != tc.hits {
			t.Errorf("got %d after %d requests, want %d after %d", resp.StatusCode, srv.Count(), tc.want, tc.hits)
		}
		c.CloseIdleConnections()
	}
}

// TestRetryAmplification is an outage seen by a fleet: every call fails,
// and the budget keeps the load near what the callers send.
func TestRetryAmplification(t *testing.T) {
	const goroutines, perG, calls = 50, 40, 50 * 40
	run := func(t *testing.T, budget *resilient.RetryBudget) (hits int, took time.Duration) {
		srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
		tr := &http.Transport{MaxIdleConnsPerHost: goroutines}
		defer tr.CloseIdleConnections()
		p := resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Budget: budget}
		c := &http.Client{Transport: resilient.Chain(tr, resilient.Retry(p))}
		start := time.Now()
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range perG {
					resp, err := c.Get(srv.URL)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		return srv.Count(), time.Since(start)
	}

	without, _ := run(t, &resilient.RetryBudget{Unlimited: true})
	with, took := run(t, nil)
	// The floor is 10 retries/s: a window's worth, plus one per second the
	// run outlasts it.
	floor := 10 * (10 + int(max(0, took-10*time.Second)/time.Second+1))
	t.Logf("%d calls, 3 attempts, always 503: server saw %d requests without a budget, %d with (%.2fx; bound %d, %v)",
		calls, without, with, float64(with)/calls, calls*12/10+floor, took.Round(time.Millisecond))
	if without != 3*calls {
		t.Errorf("without a budget the server saw %d requests, want %d", without, 3*calls)
	}
	if with > calls*12/10+floor {
		t.Errorf("with the budget the server saw %d requests, want at most %d", with, calls*12/10+floor)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "007", "-1", "1.5", " 1", "99999999999999999999999",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "", "soon"} {
		f.Add(s)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := resilient.ParseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Errorf("%q: rejected with a delay %v", v, d)
			}
			return
		}
		if d < 0 {
			t.Errorf("%q: negative delay %v", v, d)
		}
		digits := v != "" && strings.Trim(v, "0123456789") == ""
		if !digits {
			if _, err := http.ParseTime(v); err != nil {
				t.Errorf("%q: accepted, but it is neither delay-seconds nor an HTTP-date", v)
			}
			return
		}
		if d%time.Second != 0 {
			t.Errorf("%q: delay-seconds gave %v, not whole seconds", v, d)
		}
		if len(v) < 10 {
			secs, _ := strconv.ParseInt(v, 10, 64)
			if d != time.Duration(secs)*time.Second {
				t.Errorf("%q: got %v, want %ds", v, d, secs)
			}
		}
	})
}

func benchRetry(b *testing.B, code int, p resilient.RetryPolicy) {
	resp := &http.Response{StatusCode: code, Body: http.NoBody}
	base := rtFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	rt := resilient.Chain(base, resilient.Retry(p))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRetryHappyPath(b *testing.B) {
	benchRetry(b, 200, resilient.RetryPolicy{})
}

// BenchmarkRetryFailed3Attempts is the CPU cost of a call that fails three
// times, with the waits made zero.
func BenchmarkRetryFailed3Attempts(b *testing.B) {
	benchRetry(b, 503, resilient.RetryPolicy{
		InitialDelay: time.Nanosecond, MaxDelay: time.Nanosecond,
		Budget: &resilient.RetryBudget{Unlimited: true},
	})
}
