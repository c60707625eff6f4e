package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/resilient-go/resilient"
)

// The adaptive scenarios of issue 19, side by side: resilient's defaults
// with a fallback, failsafe-go's adaptive limiter and adaptive throttler
// with their defaults, and a plain http.Client.

// congested is a dependency that serves 8 requests at once in 10 ms each
// and slows with the square of the work in flight past that. Work its
// caller abandoned keeps running, as a database query does. Its capacity
// is 800 requests a second.
func congested(t testing.TB) *httptest.Server {
	var inflight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		load := max(float64(n)/8, 1)
		work := min(time.Duration(float64(10*time.Millisecond)*load*load), 3*time.Second)
		time.Sleep(work) // not cut short by the caller leaving
		io.WriteString(w, "real")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// scenarioClient is one contestant: a transport around base.
type scenarioClient struct {
	name string
	wrap func(base http.RoundTripper) http.RoundTripper
}

var scenarioClients = []scenarioClient{
	{"resilient", func(base http.RoundTripper) http.RoundTripper {
		return resilient.NewTransport(base, resilient.WithFallback(resilient.StaticFallback(200, nil, "fallback")))
	}},
	{"failsafe-adaptivelimiter", func(base http.RoundTripper) http.RoundTripper {
		return failsafehttp.NewRoundTripper(base, adaptivelimiter.NewWithDefaults[*http.Response]())
	}},
	{"failsafe-adaptivethrottler", func(base http.RoundTripper) http.RoundTripper {
		return failsafehttp.NewRoundTripper(base, adaptivethrottler.NewWithDefaults[*http.Response]())
	}},
	{"plain", func(base http.RoundTripper) http.RoundTripper { return base }},
}

// result is what callers got in a run.
type result struct {
	real, other int
	latencies   []time.Duration // of the real answers
	elapsed     time.Duration
}

func (r result) goodput() float64 { return float64(r.real) / r.elapsed.Seconds() }

func (r result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[min(int(q*float64(len(r.latencies))), len(r.latencies)-1)]
}

// drive runs callers against url through rt for d, each call under
// timeout, pausing pause after a call that got no real answer (a caller
// that retries a page at once would only spin). Bounded by d.
func drive(rt http.RoundTripper, url string, callers int, d, timeout, pause time.Duration) result {
	c := &http.Client{Transport: rt}
	var mu sync.Mutex
	var res result
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				t0 := time.Now()
				real := false
				if resp, err := c.Do(req); err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					real = rerr == nil && string(b) == "real"
				}
				cancel()
				took := time.Since(t0)
				mu.Lock()
				if real {
					res.real++
					res.latencies = append(res.latencies, took)
				} else {
					res.other++
				}
				mu.Unlock()
				if !real {
					time.Sleep(pause)
				}
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// runCollapse is the congestion collapse: 64 callers with 250 ms
// deadlines against the congested dependency for d.
func runCollapse(t testing.TB, sc scenarioClient, d time.Duration) result {
	srv := congested(t)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	defer tr.CloseIdleConnections()
	return drive(sc.wrap(tr), srv.URL, 64, d, 250*time.Millisecond, 10*time.Millisecond)
}

// BenchmarkCongestionCollapse reports each contestant's goodput (real
// answers a second; capacity 800) and the p50 and p99 of the real answers.
// One iteration is one 6 s run.
func BenchmarkCongestionCollapse(b *testing.B) {
	for _, sc := range scenarioClients {
		b.Run("lib="+sc.name, func(b *testing.B) {
			var r result
			for b.Loop() {
				r = runCollapse(b, sc, 6*time.Second)
			}
			b.ReportMetric(r.goodput(), "goodput/s")
			b.ReportMetric(float64(r.quantile(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(r.quantile(0.99).Microseconds())/1000, "p99-ms")
		})
	}
}

// TestCongestionCollapse: resilient's defaults keep goodput at half the
// capacity or more and at least 0.9 times failsafe-go's adaptive
// limiter's, and the p99 of real answers no worse than failsafe-go's (a
// quarter over it allowed for this noisy test: the two runs are apart in
// time). On the old code the defaults' goodput was 0/s.
func TestCongestionCollapse(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("a throughput test: run without -race (.ci/run does)")
	}
	ours := runCollapse(t, scenarioClients[0], 6*time.Second)
	theirs := runCollapse(t, scenarioClients[1], 6*time.Second)
	report := func(name string, r result) string {
		return fmt.Sprintf("%s: goodput %.0f/s, p50 %v, p99 %v, %d other", name, r.goodput(),
			r.quantile(0.5).Round(time.Millisecond), r.quantile(0.99).Round(time.Millisecond), r.other)
	}
	t.Log(report("resilient", ours))
	t.Log(report("failsafe-go adaptivelimiter", theirs))
	if g := ours.goodput(); g < 400 || g < 0.9*theirs.goodput() {
		t.Errorf("goodput %.0f/s, want at least 400/s and 0.9x failsafe-go's %.0f/s", g, theirs.goodput())
	}
	if p99, their := ours.quantile(0.99), theirs.quantile(0.99); p99 > their*5/4 {
		t.Errorf("p99 of real answers %v, want no worse than failsafe-go's %v", p99, their)
	}
}

// slowing is the seeds' dependency: 5 ms a request until slowAt, then 8 s
// (or until its caller leaves) for slowFor.
func slowing(t testing.TB, slowAt, slowFor time.Duration) *httptest.Server {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delay := 5 * time.Millisecond
		if since := time.Since(start); since >= slowAt && since < slowAt+slowFor {
			delay = 8 * time.Second
		}
		select {
		case <-time.After(delay):
			io.WriteString(w, "real")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// BenchmarkSlowDependency is the seeds' incident for each contestant: 32
// callers, 1 s each, a dependency that turns from 5 ms to 8 s one second
// in, for 4 s of a 6 s run. It reports, for the calls that began from 1 s
// after the slowdown to its end, their p95 and the share that got no
// answer at all (an error, not a real answer or a fallback).
func BenchmarkSlowDependency(b *testing.B) {
	for _, sc := range scenarioClients {
		b.Run("lib="+sc.name, func(b *testing.B) {
			var p95 time.Duration
			var errShare float64
			for b.Loop() {
				srv := slowing(b, time.Second, 4*time.Second)
				tr := srv.Client().Transport.(*http.Transport).Clone()
				p95, errShare = driveWindow(sc.wrap(tr), srv.URL, 2*time.Second, 5*time.Second)
				tr.CloseIdleConnections()
			}
			b.ReportMetric(float64(p95.Microseconds())/1000, "p95-ms")
			b.ReportMetric(100*errShare, "%errors")
		})
	}
}

// driveWindow runs 32 callers, 1 s a call, for 6 s, and returns the p95
// of the calls that began in [from, to) and the share of them that ended
// in an error.
func driveWindow(rt http.RoundTripper, url string, from, to time.Duration) (time.Duration, float64) {
	c := &http.Client{Transport: rt}
	var mu sync.Mutex
	var took []time.Duration
	var errs int
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 6*time.Second {
				at := time.Since(start)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				cancel()
				d := time.Since(start) - at
				if at >= from && at < to {
					mu.Lock()
					took = append(took, d)
					if err != nil {
						errs++
					}
					mu.Unlock()
				}
				time.Sleep(time.Millisecond) // a page renders
			}
		}()
	}
	wg.Wait()
	if len(took) == 0 {
		return 0, 0
	}
	slices.Sort(took)
	return took[len(took)*95/100], float64(errs) / float64(len(took))
}
