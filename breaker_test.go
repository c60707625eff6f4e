package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// compartmentRT is an in-memory transport for breaker and bulkhead tests.
type compartmentRT func(*http.Request) (*http.Response, error)

func (f compartmentRT) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func statusRT(code int) compartmentRT {
	return func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
	}
}

func getStatus(t *testing.T, c *http.Client, u string) (int, error) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func noJitter(p resilient.BreakerPolicy) resilient.BreakerPolicy {
	resilient.SetBreakerJitter(&p, func() float64 { return 0 })
	return p
}

func TestBreakerOpensAfterFiveFailures(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Status(500))
	c := clientWith(resilient.CircuitBreaker(resilient.BreakerPolicy{}))
	defer c.CloseIdleConnections()

	for i := range 5 {
		if st, err := getStatus(t, c, srv.URL); err != nil || st != 500 {
			t.Fatalf("call %d: %d, %v; want the 500 itself", i+1, st, err)
		}
	}
	start := time.Now()
	for i := range 100 {
		_, err := getStatus(t, c, srv.URL)
		if !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("call %d after tripping: %v, want ErrCircuitOpen", i+6, err)
		}
		var coe *resilient.CircuitOpenError
		if !errors.As(err, &coe) {
			t.Fatalf("%v is not a *CircuitOpenError", err)
		}
		host := strings.TrimPrefix(srv.URL, "http://")
		if !strings.Contains(err.Error(), host) || !strings.HasPrefix(coe.Error(), "resilient: ") {
			t.Fatalf("message %q should start with resilient: and name %s", coe.Error(), host)
		}
		if coe.Authority != srv.URL || coe.ProbeIn <= 0 || coe.ProbeIn > 5500*time.Millisecond {
			t.Fatalf("error = %+v, want authority %s and ProbeIn in (0, 5.5s]", coe, srv.URL)
		}
	}
	// 100 rejections in well under a millisecond each; the bound is loose
	// for a loaded machine under -race, the benchmark gives the real cost.
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("100 rejections took %v", el)
	}
	if n := srv.Count(); n != 5 {
		t.Errorf("server saw %d calls, want 5", n)
	}
}

func TestBreakerClientErrorsNeverTrip(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 422} {
		base := resilienttest.NewTransport(resilienttest.Status(code))
		rt := resilient.Chain(base, resilient.CircuitBreaker(resilient.BreakerPolicy{}))
		for range 50 {
			req := httptest.NewRequest("GET", "http://api.test/", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("%d: %v", code, err)
			}
			resp.Body.Close()
		}
		if n := base.Count(); n != 50 {
			t.Fatalf("%d: %d calls went through, want 50", code, n)
		}
	}
}

func TestBreakerFailures(t *testing.T) {
	tests := []struct {
		name  string
		fault resilienttest.Fault
		trips bool
	}{
		{"429", resilienttest.Status(429), true},
		{"503", resilienttest.Status(503), true},
		{"transport error", resilienttest.ResetConn(), true},
		{"200", resilienttest.Status(200), false},
		{"404", resilienttest.Status(404), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := resilienttest.NewTransport(tt.fault)
			rt := resilient.Chain(base, resilient.CircuitBreaker(resilient.BreakerPolicy{}))
			for range 5 {
				if resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); errors.Is(err, resilient.ErrCircuitOpen) {
					t.Fatal("opened before 5 failures")
				} else if err == nil {
					resp.Body.Close()
				}
			}
			resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
			if err == nil {
				resp.Body.Close()
			}
			if got := errors.Is(err, resilient.ErrCircuitOpen); got != tt.trips {
				t.Fatalf("open after 5 = %v, want %v (err %v)", got, tt.trips, err)
			}
			want := 6
			if tt.trips {
				want = 5
			}
			if n := base.Count(); n != want {
				t.Errorf("transport saw %d calls, want %d", n, want)
			}
		})
	}
}

func TestBreakerAttemptTimeoutIsFailure(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	c := clientWith(resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 2}),
		resilient.Timeout(20*time.Millisecond))
	defer c.CloseIdleConnections()
	for range 2 {
		if _, err := getStatus(t, c, srv.URL); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want a timeout, got %v", err)
		}
	}
	if _, err := getStatus(t, c, srv.URL); !errors.Is(err, resilient.ErrCircuitOpen) || srv.Count() != 2 {
		t.Fatalf("two attempt timeouts should open the breaker, got %v after %d requests", err, srv.Count())
	}
}

func TestBreakerCallerContextNotCounted(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	c := clientWith(resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 2}))
	defer c.CloseIdleConnections()
	for i := range 6 {
		var ctx context.Context
		var cancel context.CancelFunc
		if i%2 == 0 {
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
		} else {
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(10*time.Millisecond, cancel)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		_, err := c.Do(req)
		cancel()
		if errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("call %d: the caller's own cancellations opened the breaker", i+1)
		}
		if err == nil {
			t.Fatal("hanging server answered")
		}
	}
	if n := srv.Count(); n != 6 {
		t.Errorf("server saw %d calls, want all 6", n)
	}
}

func TestBreakerSickHostLeavesHealthyAlone(t *testing.T) {
	sick := resilienttest.NewServer(t, resilienttest.Status(500))
	healthy := resilienttest.NewServer(t)
	c := clientWith(resilient.CircuitBreaker(resilient.BreakerPolicy{}))
	defer c.CloseIdleConnections()
	for range 10 {
		getStatus(t, c, sick.URL)
	}
	if _, err := getStatus(t, c, sick.URL); !errors.Is(err, resilient.ErrCircuitOpen) || sick.Count() != 5 {
		t.Fatalf("sick host: %v after %d requests, want open after 5", err, sick.Count())
	}
	for range 20 {
		if st, err := getStatus(t, c, healthy.URL); err != nil || st != 200 {
			t.Fatalf("healthy host: %d, %v", st, err)
		}
	}
	if n := healthy.Count(); n != 20 {
		t.Errorf("healthy host saw %d calls, want 20", n)
	}
}

type changeLog struct {
	mu  sync.Mutex
	got []string
}

func (l *changeLog) record(key string, from, to resilient.State) {
	l.mu.Lock()
	l.got = append(l.got, from.String()+">"+to.String())
	l.mu.Unlock()
}

func (l *changeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.got, " ")
}

func TestBreakerProbeAfterOpenTimeout(t *testing.T) {
	// Five failures trip it; request 6 is a failed probe, 7 a good one.
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(6, 500))
	var log changeLog
	sink := &recordSink{}
	clk := clock.NewFake(0)
	p := noJitter(resilient.BreakerPolicy{OpenTimeout: 50 * time.Millisecond, OnStateChange: log.record})
	resilient.SetBreakerSink(&p, sink)
	resilient.SetBreakerClock(&p, clk)
	c := clientWith(resilient.CircuitBreaker(p))
	defer c.CloseIdleConnections()

	for range 5 {
		getStatus(t, c, srv.URL)
	}
	_, err := getStatus(t, c, srv.URL)
	var coe *resilient.CircuitOpenError
	if !errors.As(err, &coe) || coe.ProbeIn != 50*time.Millisecond {
		t.Fatalf("got %v, want open with ProbeIn 50ms", err)
	}
	// A failed probe opens it again.
	clk.Advance(50 * time.Millisecond)
	if st, err := getStatus(t, c, srv.URL); st != 500 || err != nil {
		t.Fatalf("probe: %d, %v", st, err)
	}
	if _, err := getStatus(t, c, srv.URL); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("a failed probe should reopen, got %v", err)
	}
	// A good probe closes it.
	clk.Advance(50 * time.Millisecond)
	if st, err := getStatus(t, c, srv.URL); st != 200 || err != nil {
		t.Fatalf("probe: %d, %v", st, err)
	}
	for range 10 {
		if st, err := getStatus(t, c, srv.URL); st != 200 || err != nil {
			t.Fatalf("after a good probe: %d, %v", st, err)
		}
	}
	if n := srv.Count(); n != 17 {
		t.Errorf("server saw %d calls, want 5 failures, 2 probes and 10 more", n)
	}
	want := "closed>open open>half-open half-open>open open>half-open half-open>closed"
	if got := log.String(); got != want {
		t.Errorf("state changes %q, want %q", got, want)
	}
	evs := sink.kinds(telemetry.BreakerStateChange)
	if len(evs) != 5 || evs[0].From != "closed" || evs[0].To != "open" || evs[0].Authority != srv.URL {
		t.Errorf("state change events %+v", evs)
	}
	if len(sink.kinds(telemetry.BreakerRejected)) == 0 {
		t.Error("no BreakerRejected event")
	}
}

func TestBreakerHalfOpenLetsOneProbe(t *testing.T) {
	// Five failures trip it; request 6, the probe, is held until released.
	probe := resilienttest.Hang()
	defer probe.Release()
	base := resilienttest.NewTransport(resilienttest.FailFirst(5, 500), resilienttest.OnRequests(6, 6, probe))
	clk := clock.NewFake(0)
	p := noJitter(resilient.BreakerPolicy{OpenTimeout: 30 * time.Millisecond})
	resilient.SetBreakerClock(&p, clk)
	rt := resilient.Chain(base, resilient.CircuitBreaker(p))
	call := func() error {
		resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for range 5 {
		call()
	}
	if err := call(); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("after 5 failures: %v, want open", err)
	}
	clk.Advance(30 * time.Millisecond)
	awaitCtx, stopAwait := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopAwait()
	done := make(chan error, 1)
	go func() { done <- call() }()
	if err := probe.Await(awaitCtx, 1); err != nil {
		t.Fatalf("the probe never arrived: %v", err)
	}
	err := call()
	var coe *resilient.CircuitOpenError
	if !errors.As(err, &coe) || coe.ProbeIn != 0 || !strings.Contains(err.Error(), "probe in flight") {
		t.Errorf("second call while the probe is in flight: %v", err)
	}
	probe.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := call(); err != nil {
		t.Fatalf("closed after the probe: %v", err)
	}
	if n := base.Count(); n != 7 {
		t.Errorf("transport saw %d calls, want 5 failures, the probe and one more", n)
	}
}

func TestBreakerCallbackReentersStage(t *testing.T) {
	var c *http.Client
	srv := resilienttest.NewServer(t, resilienttest.Status(500))
	var inner []string
	var rt http.RoundTripper
	p := resilient.BreakerPolicy{ConsecutiveFailures: 1, OnStateChange: func(key string, from, to resilient.State) {
		// Calls back into the stage: a request through it, and its gauge.
		_, err := getStatus(t, c, srv.URL)
		inner = append(inner, fmt.Sprint(to, " ", errors.Is(err, resilient.ErrCircuitOpen)))
		rt.(interface {
			Observe(func(string, int64))
		}).Observe(func(string, int64) {})
	}}
	rt = resilient.Chain(&http.Transport{}, resilient.CircuitBreaker(p))
	c = &http.Client{Transport: rt}
	defer c.CloseIdleConnections()

	done := make(chan struct{})
	go func() {
		defer close(done)
		getStatus(t, c, srv.URL)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: a callback calling back into the stage never returned")
	}
	if len(inner) != 1 || inner[0] != "open true" || srv.Count() != 1 {
		t.Errorf("callback saw %q after %d requests, want one change to open with the inner call rejected", inner, srv.Count())
	}
}

func TestBreakerRegistryBounded(t *testing.T) {
	// Ad hoc: the kit's Transport records every request, which costs more
	// than the stage over 10000 calls, and the base is beside the point.
	rt := resilient.Chain(statusRT(200), resilient.CircuitBreaker(resilient.BreakerPolicy{}))
	for i := range 10000 {
		req := httptest.NewRequest("GET", fmt.Sprintf("http://h%d.test/", i), nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	rt.(telemetry.Gauge).Observe(func(string, int64) { n++ })
	if n != 1024 {
		t.Errorf("%d breakers kept after 10000 hosts, want 1024", n)
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	base := resilienttest.NewTransport(resilienttest.Every(2, resilienttest.Status(500)))
	rt := resilient.Chain(base, resilient.CircuitBreaker(resilient.BreakerPolicy{
		ConsecutiveFailures: 100, MinRequests: 10, FailureRatio: 0.5,
	}))
	for n := 1; n <= 10; n++ {
		resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
		if err != nil {
			t.Fatalf("call %d: %v", n, err)
		}
		if want := 200 + 300*(1-n%2); resp.StatusCode != want {
			t.Fatalf("call %d: status %d, want %d", n, resp.StatusCode, want)
		}
		resp.Body.Close()
	}
	if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("5 failures in 10 calls should trip at ratio 0.5, got %v", err)
	}
}

func TestBreakerCustomKey(t *testing.T) {
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Status(500)), resilient.CircuitBreaker(resilient.BreakerPolicy{
		ConsecutiveFailures: 2,
		Key:                 func(r *http.Request) string { return r.Header.Get("Tenant") },
	}))
	call := func(host, tenant string) error {
		req := httptest.NewRequest("GET", "http://"+host+"/", nil)
		req.Header.Set("Tenant", tenant)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	call("a.test", "acme")
	call("b.test", "acme")
	err := call("c.test:8080", "acme")
	var coe *resilient.CircuitOpenError
	if !errors.As(err, &coe) || coe.Key != "acme" || coe.Authority != "http://c.test:8080" {
		t.Fatalf("got %v, want the acme breaker open", err)
	}
	if !strings.Contains(err.Error(), "c.test:8080") || !strings.Contains(err.Error(), `"acme"`) {
		t.Errorf("message %q should name host:port and the key", err)
	}
	if err := call("c.test:8080", "other"); errors.Is(err, resilient.ErrCircuitOpen) {
		t.Error("another key's breaker is open too")
	}
}

func TestBreakerRejectionClosesRequestBody(t *testing.T) {
	base := resilienttest.NewTransport(resilienttest.Status(500))
	rt := resilient.Chain(base, resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 1}))
	if resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); err == nil {
		resp.Body.Close()
	}
	b := &closeBody{Reader: strings.NewReader("payload")}
	req := httptest.NewRequest("POST", "http://api.test/", nil)
	req.Body = b
	if _, err := rt.RoundTrip(req); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatal(err)
	}
	if !b.closed.Load() || base.Count() != 1 {
		t.Errorf("request body closed on rejection: %v; transport saw %d calls, want 1", b.closed.Load(), base.Count())
	}
}

type closeBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeBody) Close() error { b.closed.Store(true); return nil }

func TestBreakerPanicBelowCountsAsFailure(t *testing.T) {
	rt := resilient.Chain(compartmentRT(func(*http.Request) (*http.Response, error) { panic("boom") }),
		resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 1}))
	func() {
		defer func() { recover() }()
		rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	}()
	if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("a panic below should count as a failure, got %v", err)
	}
}

func TestBreakerGauge(t *testing.T) {
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Status(500)),
		resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 1}))
	if resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); err == nil {
		resp.Body.Close()
	}
	got := map[string]int64{}
	rt.(telemetry.Gauge).Observe(func(k string, v int64) { got[k] = v })
	if got["http://api.test:80"] != 2 || len(got) != 1 {
		t.Errorf("gauge = %v, want api.test at 2 (open)", got)
	}
}

func TestBreakerPolicyPanics(t *testing.T) {
	for field, p := range map[string]resilient.BreakerPolicy{
		"ConsecutiveFailures": {ConsecutiveFailures: -1},
		"FailureRatio":        {FailureRatio: 1.5},
		"MinRequests":         {MinRequests: -1},
		"Window":              {Window: -time.Second},
		"OpenTimeout":         {OpenTimeout: -time.Second},
		"HalfOpenRequests":    {HalfOpenRequests: -1},
		"MaxKeys":             {MaxKeys: -1},
	} {
		func() {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, "resilient: BreakerPolicy."+field) {
					t.Errorf("%s: panic %q should name the field", field, msg)
				}
			}()
			resilient.CircuitBreaker(p)
		}()
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[resilient.State]string{
		resilient.StateClosed: "closed", resilient.StateHalfOpen: "half-open", resilient.StateOpen: "open", 7: "state(7)",
	} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestPipelineHasBreakerAndBulkhead(t *testing.T) {
	// The body of /hold keeps its bulkhead slot until closed.
	base := resilienttest.NewTransport(resilienttest.OnPath("/hold", resilienttest.Respond(200, "x")), resilienttest.Status(500))
	rt := resilient.NewTransport(base, resilient.Without(resilient.StageRetry, resilient.StageTracing),
		resilient.WithBulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1}),
		resilient.WithBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 3}))
	held, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/hold", nil))
	if err != nil {
		t.Fatal(err)
	}
	// Bulkhead rejections happen outside the breaker: they do not count.
	for range 5 {
		if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); !errors.Is(err, resilient.ErrBulkheadFull) {
			t.Fatalf("want ErrBulkheadFull, got %v", err)
		}
	}
	held.Body.Close()
	for range 3 {
		resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
		if err != nil {
			t.Fatalf("the bulkhead rejections tripped the breaker: %v", err)
		}
		resp.Body.Close()
	}
	if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("want ErrCircuitOpen, got %v", err)
	}
	if n := base.Count(); n != 4 {
		t.Errorf("base saw %d calls, want 4", n)
	}
}

func ExampleCircuitBreaker() {
	srv := resilienttest.StartServer(resilienttest.Status(http.StatusServiceUnavailable))
	defer srv.Close()

	client := &http.Client{Transport: resilient.Chain(nil,
		resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 3}))}
	defer client.CloseIdleConnections()
	for range 5 {
		resp, err := client.Get(srv.URL)
		if errors.Is(err, resilient.ErrCircuitOpen) {
			fmt.Println("circuit open: not sent")
			continue
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	// Output:
	// 503 Service Unavailable
	// 503 Service Unavailable
	// 503 Service Unavailable
	// circuit open: not sent
	// circuit open: not sent
}

var benchSink error

// staticRT answers every call with one shared response, so a benchmark
// measures the stage, not the fake.
func staticRT(code int) http.RoundTripper {
	resp := &http.Response{StatusCode: code, Body: http.NoBody}
	return compartmentRT(func(*http.Request) (*http.Response, error) { return resp, nil })
}

func benchBreaker(b *testing.B, base http.RoundTripper, parallel bool) {
	rt := resilient.Chain(base, resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 1, OpenTimeout: time.Hour}))
	req := httptest.NewRequest("GET", "http://api.test/", nil)
	rt.RoundTrip(req)
	b.ReportAllocs()
	if !parallel {
		for b.Loop() {
			_, benchSink = rt.RoundTrip(req)
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, err := rt.RoundTrip(req)
			if err != nil && !errors.Is(err, resilient.ErrCircuitOpen) {
				panic(err)
			}
		}
	})
}

func BenchmarkBreakerHappy(b *testing.B)         { benchBreaker(b, staticRT(200), false) }
func BenchmarkBreakerHappyParallel(b *testing.B) { benchBreaker(b, staticRT(200), true) }
func BenchmarkBreakerOpen(b *testing.B)          { benchBreaker(b, staticRT(500), false) }
func BenchmarkBreakerOpenParallel(b *testing.B)  { benchBreaker(b, staticRT(500), true) }

func TestBreakerSuccessResetsConsecutiveFailures(t *testing.T) {
	var code atomic.Int32
	base := compartmentRT(func(req *http.Request) (*http.Response, error) { return statusRT(int(code.Load()))(req) })
	rt := resilient.Chain(base, resilient.CircuitBreaker(resilient.BreakerPolicy{MinRequests: 1000}))
	call := func(c int) error {
		code.Store(int32(c))
		_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
		return err
	}
	for range 3 {
		for range 4 {
			call(500)
		}
		if err := call(200); err != nil {
			t.Fatalf("4 failures then a success: %v", err)
		}
	}
	for range 5 {
		call(500)
	}
	if err := call(200); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("5 in a row should open, got %v", err)
	}
}
