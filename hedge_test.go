package resilient_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// manualTimers is a timer factory the test fires by hand.
type manualTimers struct {
	mu     sync.Mutex
	armed  []*manualTimer
	delays []time.Duration
	wg     sync.WaitGroup
}

type manualTimer struct {
	owner *manualTimers
	f     func()
	state int // 0 armed, 1 stopped, 2 fired; guarded by owner.mu
}

func (m *manualTimers) after(d time.Duration, f func()) resilient.HedgeTimer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{owner: m, f: f}
	m.armed = append(m.armed, t)
	m.delays = append(m.delays, d)
	return t
}

func (t *manualTimer) Stop() bool {
	t.owner.mu.Lock()
	defer t.owner.mu.Unlock()
	if t.state != 0 {
		return false
	}
	t.state = 1
	return true
}

// fire fires timer i in its own goroutine, as time.AfterFunc does, and
// reports whether it was still armed.
func (m *manualTimers) fire(i int) bool {
	m.mu.Lock()
	t := m.armed[i]
	armed := t.state == 0
	if armed {
		t.state = 2
	}
	m.mu.Unlock()
	if armed {
		m.wg.Go(t.f)
	}
	return armed
}

func (m *manualTimers) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.armed)
}

// waitArmed waits until n timers have been armed.
func (m *manualTimers) waitArmed(t *testing.T, n int) {
	t.Helper()
	for range 500 {
		if m.count() >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%d timers armed, want %d", m.count(), n)
}

func getReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The headline: the first attempt stalls, a hedge sent after 50 ms
// answers, the caller gets it in well under a second, and the stalled
// request is cancelled on the server.
func TestHedgeStalledFirstAttemptLoses(t *testing.T) {
	stalled := resilienttest.Hang()
	srv := resilienttest.NewServer(t, resilienttest.OnPath("/stall", stalled), resilienttest.Respond(200, "fast"))
	// Should the hedge never give up on the stalled request, let it end
	// after 10 s instead of at the server's Close (which a hedge that
	// waits for its losers would never reach); a released request is not
	// counted abandoned, so the test still fails.
	defer time.AfterFunc(10*time.Second, stalled.Release).Stop()
	var first sync.Once
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	// The first attempt goes to /stall, hedges to /: the server cannot tell
	// them apart otherwise.
	route := func(next http.RoundTripper) http.RoundTripper {
		return rtFunc(func(r *http.Request) (*http.Response, error) {
			isFirst := false
			first.Do(func() { isFirst = true })
			if isFirst {
				r = r.Clone(r.Context())
				r.URL.Path = "/stall"
			}
			return next.RoundTrip(r)
		})
	}
	c := &http.Client{Transport: resilient.Chain(tr, resilient.Hedge(resilient.HedgePolicy{Delay: 50 * time.Millisecond}), route)}
	start := time.Now()
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if got := readBody(t, resp); got != "fast" || resp.StatusCode != 200 {
		t.Errorf("got %d %q, want 200 \"fast\"", resp.StatusCode, got)
	}
	if took < 50*time.Millisecond || took > 500*time.Millisecond {
		t.Errorf("took %v, want between the 50ms delay and 500ms", took)
	}
	// Abandoned counts only a client that went away, not Release or Close.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stalled.AwaitAbandoned(ctx, 1); err != nil {
		t.Fatal("the stalled request's server context was not cancelled")
	}
	if srv.Count() != 2 {
		t.Errorf("server saw %d requests, want 2", srv.Count())
	}
}

func TestHedgeFastAnswerSendsNoHedge(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	base := resilienttest.NewTransport(resilienttest.Respond(200, "hi"))
	var timers manualTimers
	p := resilient.HedgePolicy{Delay: time.Second}
	resilient.SetHedgeAfterFunc(&p, timers.after)
	rt := resilient.Chain(base, resilient.Hedge(p))
	for range 5 {
		resp, err := rt.RoundTrip(getReq(t, "http://example.test/"))
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
	}
	if base.Count() != 5 {
		t.Errorf("transport saw %d requests, want 5", base.Count())
	}
	for i := range timers.count() {
		if timers.fire(i) {
			t.Errorf("timer %d still armed after its call returned", i)
		}
	}
}

// hedged runs one call through Hedge(p) over base with hand-fired timers:
// fire runs once the first attempt is in flight. It returns the outcome.
func hedged(t *testing.T, p resilient.HedgePolicy, base http.RoundTripper, req *http.Request, fire func(*manualTimers)) (*http.Response, error) {
	t.Helper()
	var timers manualTimers
	resilient.SetHedgeAfterFunc(&p, timers.after)
	rt := resilient.Chain(base, resilient.Hedge(p))
	type out struct {
		resp *http.Response
		err  error
	}
	done := make(chan out, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		done <- out{resp, err}
	}()
	timers.waitArmed(t, 1)
	fire(&timers)
	o := <-done
	timers.wg.Wait()
	return o.resp, o.err
}

func TestHedgeWinnerAndLosers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script []resilienttest.Fault
		want   string
		status int
	}{
		{"hedge wins over a hung first attempt", []resilienttest.Fault{
			resilienttest.OnRequests(1, 1, resilienttest.Latency(time.Hour)),
			resilienttest.Respond(200, "hedge"),
		}, "hedge", 200},
		{"first attempt wins over a failed hedge", []resilienttest.Fault{
			resilienttest.OnRequests(2, 2, resilienttest.Respond(503, "hedge failed")),
			resilienttest.Latency(30 * time.Millisecond),
			resilienttest.Respond(200, "first"),
		}, "first", 200},
		{"all fail: the first attempt's outcome", []resilienttest.Fault{
			resilienttest.OnRequests(1, 1, resilienttest.Latency(30*time.Millisecond), resilienttest.Respond(503, "first")),
			resilienttest.Respond(502, "hedge"),
		}, "first", 503},
		{"hedge wins after the first attempt failed", []resilienttest.Fault{
			resilienttest.OnRequests(1, 1, resilienttest.Latency(10*time.Millisecond), resilienttest.Respond(500, "first")),
			resilienttest.Latency(40 * time.Millisecond),
			resilienttest.Respond(200, "hedge"),
		}, "hedge", 200},
		{"4xx is an answer", []resilienttest.Fault{
			resilienttest.OnRequests(1, 1, resilienttest.Latency(time.Hour)),
			resilienttest.Respond(404, "hedge"),
		}, "hedge", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			mem := resilienttest.NewTransport(tc.script...)
			resp, err := hedged(t, resilient.HedgePolicy{Delay: time.Millisecond}, mem,
				getReq(t, "http://example.test/"), func(m *manualTimers) { m.fire(0) })
			if err != nil {
				t.Fatal(err)
			}
			// Every body but the one returned is closed by now.
			if n := mem.OpenBodies(); n != 1 {
				t.Errorf("%d bodies open after RoundTrip, want only the caller's", n)
			}
			if got := readBody(t, resp); got != tc.want || resp.StatusCode != tc.status {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, got, tc.status, tc.want)
			}
			if n := mem.OpenBodies(); n != 0 {
				t.Errorf("%d bodies open after the caller closed its own", n)
			}
			if mem.Count() != 2 {
				t.Errorf("transport saw %d requests, want 2", mem.Count())
			}
		})
	}
}

// The winner's context lives until its body is read, then ends.
func TestHedgeWinnerContextLivesUntilBodyDone(t *testing.T) {
	var winnerCtx context.Context
	var mu sync.Mutex
	mem := resilienttest.NewTransport(
		resilienttest.OnRequests(1, 1, resilienttest.Latency(time.Hour)),
		resilienttest.Respond(200, "hedge"),
	)
	capture := rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := mem.RoundTrip(r)
		if err == nil {
			mu.Lock()
			winnerCtx = r.Context()
			mu.Unlock()
		}
		return resp, err
	})
	resp, err := hedged(t, resilient.HedgePolicy{Delay: time.Millisecond}, capture,
		getReq(t, "http://example.test/"), func(m *manualTimers) { m.fire(0) })
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ctx := winnerCtx
	mu.Unlock()
	if ctx.Err() != nil {
		t.Fatal("winner's context ended before its body was read")
	}
	if got := readBody(t, resp); got != "hedge" {
		t.Errorf("body %q", got)
	}
	if ctx.Err() == nil {
		t.Error("winner's context still live after its body was closed")
	}
	if n := telemetry.AttemptFrom(ctx); n != 2 {
		t.Errorf("hedge carried attempt %d, want 2", n)
	}
}

func TestHedgePOSTWithoutKeyNeverHedged(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		want int
	}{
		{"without key", "", 1},
		{"with key", "k1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := resilienttest.NewServer(t, resilienttest.OnRequests(1, 1, resilienttest.Latency(300*time.Millisecond)))
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: resilient.Chain(tr, resilient.Hedge(resilient.HedgePolicy{Delay: 10 * time.Millisecond}))}
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("payload"))
			if tc.key != "" {
				req.Header.Set("Idempotency-Key", tc.key)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			if srv.Count() != tc.want {
				t.Fatalf("server saw %d requests, want %d", srv.Count(), tc.want)
			}
			for _, r := range srv.Requests() {
				if string(r.Body) != "payload" {
					t.Errorf("request %d carried body %q", r.N, r.Body)
				}
			}
		})
	}
}

func TestHedgeBudgetRefusalStopsHedging(t *testing.T) {
	// No floor, and a hedge costs a hundred calls' earnings.
	budget := &resilient.RetryBudget{Ratio: 0.01, MinPerSecond: 1, Window: 10 * time.Millisecond}
	rec := &recordSink{}
	p := resilient.HedgePolicy{Delay: time.Millisecond, MaxHedges: 3, Budget: budget}
	resilient.SetHedgeSink(&p, rec)
	mem := resilienttest.NewTransport(resilienttest.Latency(20*time.Millisecond), resilienttest.Respond(200, "first"))
	resp, err := hedged(t, p, mem, getReq(t, "http://example.test/"), func(m *manualTimers) { m.fire(0) })
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); got != "first" {
		t.Errorf("body %q", got)
	}
	if mem.Count() != 1 || rec.count(telemetry.BudgetExhausted) != 1 || rec.count(telemetry.Hedge) != 0 {
		t.Errorf("%d requests, %d budget events, %d hedge events; want 1, 1, 0",
			mem.Count(), rec.count(telemetry.BudgetExhausted), rec.count(telemetry.Hedge))
	}

	// The control: an unlimited budget lets the hedges go.
	p.Budget = &resilient.RetryBudget{Unlimited: true}
	mem = resilienttest.NewTransport(resilienttest.OnRequests(1, 1, resilienttest.Latency(time.Hour)),
		resilienttest.OnRequests(2, 3, resilienttest.Status(503)))
	rec = &recordSink{}
	resilient.SetHedgeSink(&p, rec)
	resp, err = hedged(t, p, mem, getReq(t, "http://example.test/"), func(m *manualTimers) {
		for i := range 3 {
			m.waitArmed(t, i+1)
			m.fire(i)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if mem.Count() != 4 || rec.count(telemetry.Hedge) != 3 || resp.StatusCode != 200 {
		t.Errorf("%d requests, %d hedge events, status %d; want 4, 3, 200", mem.Count(), rec.count(telemetry.Hedge), resp.StatusCode)
	}
}

func TestHedgeAdaptiveDelayStartsAtDefault(t *testing.T) {
	var timers manualTimers
	p := resilient.HedgePolicy{}
	resilient.SetHedgeAfterFunc(&p, timers.after)
	rt := resilient.Chain(resilienttest.NewTransport(), resilient.Hedge(p))
	resp, err := rt.RoundTrip(getReq(t, "http://example.test/"))
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if timers.delays[0] != resilient.DefaultHedgeDelay {
		t.Errorf("first delay %v, want %v", timers.delays[0], resilient.DefaultHedgeDelay)
	}
}

func TestHedgeCallerCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	held := resilienttest.Hang()
	mem := resilienttest.NewTransport(held)
	ctx, cancel := context.WithCancel(context.Background())
	req := getReq(t, "http://example.test/").WithContext(ctx)
	resp, err := hedged(t, resilient.HedgePolicy{Delay: time.Millisecond}, mem, req, func(m *manualTimers) {
		m.fire(0)
		// Cancel once the first attempt and the hedge are both held.
		awaitCtx, stopAwait := context.WithTimeout(context.Background(), 5*time.Second)
		defer stopAwait()
		if err := held.Await(awaitCtx, 2); err != nil {
			t.Errorf("%d of 2 attempts in flight: %v", held.Waiting(), err)
		}
		cancel()
	})
	if !errors.Is(err, context.Canceled) || resp != nil || mem.Count() != 2 {
		t.Errorf("got %v, %v after %d requests; want context.Canceled after 2", resp, err, mem.Count())
	}
}

func TestWithHedgeInStandardPipeline(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []resilient.Option
		hits int
	}{
		{"hedge replaces retry: a 503 is not retried", []resilient.Option{resilient.WithHedge(resilient.HedgePolicy{Delay: time.Second})}, 1},
		{"retry after hedge wins", []resilient.Option{
			resilient.WithHedge(resilient.HedgePolicy{Delay: time.Second}),
			resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
		}, 3},
		{"hedge after retry wins", []resilient.Option{
			resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
			resilient.WithHedge(resilient.HedgePolicy{Delay: time.Second}),
		}, 1},
		{"hedge off", []resilient.Option{resilient.WithHedge(resilient.HedgePolicy{}), resilient.Without(resilient.StageHedge, resilient.StageRetry)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := resilienttest.NewServer(t, resilienttest.FailFirst(2, 503))
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: resilient.NewTransport(tr, tc.opts...)}
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			want := 503 // a call of one attempt gets the first 503
			if tc.hits == 3 {
				want = 200
			}
			if srv.Count() != tc.hits || resp.StatusCode != want {
				t.Errorf("%d requests ending in %d, want %d ending in %d", srv.Count(), resp.StatusCode, tc.hits, want)
			}
		})
	}
	// And it hedges: a stalled first request is overtaken.
	srv := resilienttest.NewServer(t, resilienttest.OnRequests(1, 1, resilienttest.Latency(5*time.Second)))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: resilient.NewTransport(tr, resilient.WithHedge(resilient.HedgePolicy{Delay: 20 * time.Millisecond}))}
	start := time.Now()
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if took := time.Since(start); took > 2*time.Second || srv.Count() != 2 {
		t.Errorf("took %v over %d requests; want a hedge to answer", took, srv.Count())
	}
}

func TestHedgePolicyPanics(t *testing.T) {
	for _, tc := range []struct {
		p    resilient.HedgePolicy
		want string
	}{
		{resilient.HedgePolicy{Delay: -1}, "HedgePolicy.Delay"},
		{resilient.HedgePolicy{MaxHedges: -1}, "HedgePolicy.MaxHedges"},
		{resilient.HedgePolicy{Budget: &resilient.RetryBudget{Ratio: -1}}, "RetryBudget.Ratio"},
	} {
		func() {
			defer func() {
				if r, _ := recover().(string); !strings.Contains(r, tc.want) {
					t.Errorf("panic %q, want one naming %s", r, tc.want)
				}
			}()
			resilient.Hedge(tc.p)
		}()
	}
}
