package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
)

// These tests run the defaults (NewClient with only a fallback) against
// real loopback servers for a few seconds each: what users ship.

// page is one caller's call: how long it took and what it got.
type page struct {
	at       time.Duration // since the run's start, when the call began
	took     time.Duration
	real     bool // the dependency's own answer
	fallback bool
	err      error
}

// runWorkers runs n workers calling c for d, each call under its own
// timeout (0: none), and returns every page. Bounded by d.
func runWorkers(t *testing.T, c *http.Client, url string, n int, d, timeout, pause time.Duration) []page {
	t.Helper()
	var mu sync.Mutex
	var pages []page
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if timeout > 0 {
					ctx, cancel = context.WithTimeout(ctx, timeout)
				}
				p := page{at: time.Since(start)}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := c.Do(req)
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case rerr != nil:
						err = rerr
					case resp.Header.Get("X-Fallback") != "":
						p.fallback = true
					case resp.StatusCode == 200 && string(b) == "real":
						p.real = true
					default:
						err = errors.New("unexpected answer " + resp.Status + " " + string(b))
					}
				}
				cancel()
				p.err, p.took = err, time.Since(start)-p.at
				mu.Lock()
				pages = append(pages, p)
				mu.Unlock()
				if pause > 0 {
					time.Sleep(pause) // after every page
				}
			}
		}()
	}
	wg.Wait()
	return pages
}

func between(pages []page, from, to time.Duration) []page {
	var out []page
	for _, p := range pages {
		if p.at >= from && p.at < to {
			out = append(out, p)
		}
	}
	return out
}

func p95(pages []page) time.Duration {
	if len(pages) == 0 {
		return 0
	}
	d := make([]time.Duration, len(pages))
	for i, p := range pages {
		d[i] = p.took
	}
	slices.Sort(d)
	return d[len(d)*95/100]
}

func count(pages []page, f func(page) bool) int {
	n := 0
	for _, p := range pages {
		if f(p) {
			n++
		}
	}
	return n
}

func fallbackClient() *http.Client {
	h := http.Header{"X-Fallback": {"1"}}
	return resilient.NewClient(resilient.WithFallback(resilient.StaticFallback(200, h, "fallback")))
}

// TestDefaultsContainASlowDependency is the seeds' incident: a dependency
// that answers in 5 ms takes 8 s a request for 7 s, and each page gives it
// one second. With the defaults and a fallback, pages stay fast and the
// sick service is spared. On the old code: p95 1.02 s, every page an
// error, 224 requests to the sick service.
func TestDefaultsContainASlowDependency(t *testing.T) {
	if testing.Short() {
		t.Skip("16 s of traffic")
	}
	const onset, slowFor = time.Second, 7 * time.Second
	var slowFrom atomic.Int64 // unix nanos; 0: healthy
	var sickRequests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delay := 5 * time.Millisecond
		if s := slowFrom.Load(); s != 0 && time.Since(time.Unix(0, s)) < slowFor {
			sickRequests.Add(1)
			delay = 8 * time.Second
		}
		select {
		case <-time.After(delay):
			io.WriteString(w, "real")
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	c := fallbackClient()
	defer c.CloseIdleConnections()
	time.AfterFunc(onset, func() { slowFrom.Store(time.Now().UnixNano()) })
	// A page takes a millisecond to render whatever it got: workers that
	// spin on instant fallbacks would measure the CPU, not the defences.
	pages := runWorkers(t, c, srv.URL, 32, onset+slowFor+8*time.Second, time.Second, time.Millisecond)

	during := between(pages, onset+3*time.Second, onset+slowFor)
	errs := count(during, func(p page) bool { return p.err != nil })
	t.Logf("from 3 s after onset: %d pages, p95 %v, %d errors; sick service got %d requests",
		len(during), p95(during), errs, sickRequests.Load())
	if got := p95(during); got >= 100*time.Millisecond {
		t.Errorf("p95 %v from 3 s after onset, want < 100ms", got)
	}
	if errs*100 > len(during) {
		t.Errorf("%d of %d pages got an error, want at most 1%%", errs, len(during))
	}
	if n := sickRequests.Load(); n >= 150 {
		t.Errorf("the sick service got %d requests while slow, want < 150", n)
	}
	// The goal, logged rather than held: real answers again within 2 s.
	var recovery []string
	for s := range 6 {
		from := onset + slowFor + time.Duration(s)*time.Second
		in := between(pages, from, from+time.Second)
		recovery = append(recovery, fmt.Sprintf("%d-%d s: %d%%", s, s+1, 100*count(in, func(p page) bool { return p.real })/max(len(in), 1)))
	}
	t.Logf("real answers after recovery: %s", strings.Join(recovery, ", "))
	after := between(pages, onset+slowFor+6*time.Second, onset+slowFor+8*time.Second)
	real := count(after, func(p page) bool { return p.real })
	t.Logf("from 6 s after recovery: %d of %d pages real", real, len(after))
	if len(after) == 0 || real*100 < 95*len(after) {
		t.Errorf("%d of %d pages real from 6 s after recovery, want at least 95%%", real, len(after))
	}
}

// TestDefaultsLeaveAHealthyHeavyTailAlone: 1 request in 50 takes 1.5 s,
// the rest 5 ms; 16 callers without deadlines. The slow ones are the
// host's normal: no fallback, no error, none cut short.
func TestDefaultsLeaveAHealthyHeavyTailAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s of traffic")
	}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delay := 5 * time.Millisecond
		if n.Add(1)%50 == 0 {
			delay = 1500 * time.Millisecond
		}
		time.Sleep(delay)
		io.WriteString(w, "real")
	}))
	defer srv.Close()
	c := fallbackClient()
	defer c.CloseIdleConnections()
	pages := runWorkers(t, c, srv.URL, 16, 8*time.Second, 0, 0)
	fallbacks := count(pages, func(p page) bool { return p.fallback })
	errs := count(pages, func(p page) bool { return p.err != nil })
	slow := count(pages, func(p page) bool { return p.real && p.took >= 1500*time.Millisecond })
	t.Logf("%d pages, %d answered after 1.5 s, %d fallbacks, %d errors", len(pages), slow, fallbacks, errs)
	if fallbacks != 0 || errs != 0 {
		t.Errorf("%d fallbacks and %d errors against a healthy heavy tail, want none", fallbacks, errs)
	}
	if slow == 0 {
		t.Error("no slow request was answered: were they cut short?")
	}
}

// TestDefaultsIgnoreAnImpatientCaller: one caller with a 1 ms deadline
// among 7 patient ones, against a healthy 5 ms dependency. Its timeouts
// are its own: the patient callers get no fallback and no rejection.
func TestDefaultsIgnoreAnImpatientCaller(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		io.WriteString(w, "real")
	}))
	defer srv.Close()
	c := fallbackClient()
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runWorkers(t, c, srv.URL, 1, 3*time.Second, time.Millisecond, 0)
	}()
	patient := runWorkers(t, c, srv.URL, 7, 3*time.Second, 0, 0)
	wg.Wait()
	bad := count(patient, func(p page) bool { return !p.real })
	t.Logf("%d patient pages, %d not real", len(patient), bad)
	if bad != 0 || len(patient) == 0 {
		t.Errorf("%d of %d patient pages got a fallback or an error, want none", bad, len(patient))
	}
}

// TestDefaultsTakeAHealthyBurst: 200 calls at once to a healthy 20 ms
// dependency through NewClient(): none is refused.
func TestDefaultsTakeAHealthyBurst(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "real")
	}))
	defer srv.Close()
	c := resilient.NewClient()
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	var refused, failed atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(srv.URL)
			switch {
			case errors.Is(err, resilient.ErrBulkheadFull) || errors.Is(err, resilient.ErrCircuitOpen) || errors.Is(err, resilient.ErrRateLimited):
				refused.Add(1)
			case err != nil:
				failed.Add(1)
			default:
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 0 || failed.Load() != 0 {
		t.Errorf("%d of 200 calls refused and %d failed, want none", refused.Load(), failed.Load())
	}
}

// TestLeakedBodySlotComesBack: two 404s whose bodies are never closed fill
// a pool of 2; the error says so; once the calls' deadline has passed the
// slots come back. On the old code every later call failed, forever.
func TestLeakedBodySlotComesBack(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, "not here")
	}))
	defer srv.Close()
	c := resilient.NewClient(resilient.WithBulkhead(resilient.BulkheadPolicy{MaxConcurrent: 2}),
		resilient.WithAttemptTimeout(200*time.Millisecond))
	defer c.CloseIdleConnections()
	var leaked []*http.Response
	for range 2 {
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		leaked = append(leaked, resp) // never closed, as the bug has it
	}
	_, err := c.Get(srv.URL)
	var full *resilient.BulkheadFullError
	if !errors.As(err, &full) || full.OpenBodies != 2 {
		t.Fatalf("third call: %v; want a full bulkhead with 2 slots held by open bodies", err)
	}
	t.Logf("the error: %v", err)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still held 5 s after a 200 ms attempt deadline: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = leaked
}

// TestOverloadedHostShedsCallersWithADeadline: 64 callers with 250 ms
// deadlines at a host that serves 8 at once and slows with the square of
// the work past that. Once the limit was cut, callers are refused at once
// rather than queued rounds deep, and the error says why.
func TestOverloadedHostShedsCallersWithADeadline(t *testing.T) {
	var inflight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		load := max(float64(n)/8, 1)
		time.Sleep(min(time.Duration(float64(10*time.Millisecond)*load*load), 3*time.Second)) // abandoned work keeps running
		io.WriteString(w, "real")
	}))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	c := &http.Client{Transport: resilient.NewTransport(tr)} // the defaults
	defer c.CloseIdleConnections()

	var shed atomic.Pointer[resilient.BulkheadFullError]
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for shed.Load() == nil && time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				resp, err := c.Do(req)
				var full *resilient.BulkheadFullError
				switch {
				case err == nil:
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				case errors.As(err, &full) && full.Overloaded:
					shed.CompareAndSwap(nil, full)
				default:
					time.Sleep(10 * time.Millisecond)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	e := shed.Load()
	if e == nil {
		t.Fatal("no caller was shed in 3 s of overload")
	}
	t.Logf("the error: %v", e)
	if !errors.Is(e, resilient.ErrBulkheadFull) || e.AdaptiveLimit == 0 || !strings.Contains(e.Error(), "host overloaded") {
		t.Errorf("shed error %q (%+v): want ErrBulkheadFull with the adaptive limit, saying the host is overloaded", e, *e)
	}
}
