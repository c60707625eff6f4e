package resilient_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
)

// scriptFleet is a Fleet whose breaker verdicts the test sets, and which
// records what the stage reports. It has no rate (fakeFleet has).
type scriptFleet struct {
	epoch  atomic.Uint64
	epochs atomic.Int64 // Epoch calls

	mu        sync.Mutex
	open      map[string]time.Duration // key: probe in
	probeOK   bool
	probeWait time.Duration
	probeErr  error
	failures  []resilient.FleetFailure
	acquired  int
	results   []bool
}

func (f *scriptFleet) TakeRate(context.Context, string, float64, int, time.Duration) (time.Duration, bool, error) {
	return 0, false, errors.New("no rate here")
}

func (f *scriptFleet) Epoch() uint64 { f.epochs.Add(1); return f.epoch.Load() }

func (f *scriptFleet) setOpen(key string, probeIn time.Duration, open bool) {
	f.mu.Lock()
	if f.open == nil {
		f.open = map[string]time.Duration{}
	}
	if open {
		f.open[key] = probeIn
	} else {
		delete(f.open, key)
	}
	f.mu.Unlock()
	f.epoch.Add(1)
}

func (f *scriptFleet) BreakerOpen(key string) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.open[key]
	return d, ok
}

func (f *scriptFleet) ReportFailure(r resilient.FleetFailure) {
	f.mu.Lock()
	f.failures = append(f.failures, r)
	f.mu.Unlock()
}

func (f *scriptFleet) AcquireProbe(context.Context, string, time.Duration) (time.Duration, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acquired++
	return f.probeWait, f.probeOK, f.probeErr
}

func (f *scriptFleet) ReportProbe(_ string, ok bool, _ time.Duration) {
	f.mu.Lock()
	f.results = append(f.results, ok)
	f.mu.Unlock()
}

// seqTransport answers with its statuses in turn, then 200.
type seqTransport struct {
	n        atomic.Int64
	statuses []int
}

func (s *seqTransport) Count() int { return int(s.n.Load()) }

func (s *seqTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	i, code := s.n.Add(1)-1, 200
	if int(i) < len(s.statuses) {
		code = s.statuses[i]
	}
	return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
}

func fleetBreaker(t *testing.T, f resilient.Fleet, statuses ...int) (call func() error, tr *seqTransport, clk *clock.Fake) {
	t.Helper()
	clk = clock.NewFake(0)
	p := noJitter(resilient.BreakerPolicy{ConsecutiveFailures: 3, OpenTimeout: time.Second, Fleet: f})
	resilient.SetBreakerClock(&p, clk)
	tr = &seqTransport{statuses: statuses}
	rt := resilient.Chain(tr, resilient.CircuitBreaker(p))
	return func() error {
		resp, err := rt.RoundTrip(mustGet(t, "http://api.test/"))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}, tr, clk
}

// TestBreakerFleetHoldsOpen: the fleet's verdict holds the local breaker
// open until the fleet's probe time, without a local failure; then only
// the process with the probe lock probes, and its result is reported.
func TestBreakerFleetHoldsOpen(t *testing.T) {
	f := &scriptFleet{}
	call, tr, clk := fleetBreaker(t, f, 200, 200, 200)
	if err := call(); err != nil {
		t.Fatal(err)
	}
	f.setOpen("http://api.test:80", 2*time.Second, true)
	var coe *resilient.CircuitOpenError
	if err := call(); !errors.As(err, &coe) || coe.ProbeIn != 2*time.Second {
		t.Fatalf("call after the fleet opened: %v; want open, probe in 2s", err)
	}
	clk.Advance(2 * time.Second)
	f.setOpen("http://api.test:80", 0, true)
	f.probeWait = 700 * time.Millisecond // another process probes
	if err := call(); !errors.As(err, &coe) || coe.ProbeIn != 700*time.Millisecond {
		t.Fatalf("probe while another holds the lock: %v; want open for the lock's 700ms", err)
	}
	f.probeOK = true
	clk.Advance(700 * time.Millisecond)
	if err := call(); err != nil {
		t.Fatalf("probe with the lock: %v", err)
	}
	if tr.Count() != 2 || len(f.results) != 1 || !f.results[0] || f.acquired != 2 {
		t.Errorf("host saw %d, probe results %v, lock asked %d times; want 2, [true], 2", tr.Count(), f.results, f.acquired)
	}
}

// TestBreakerFleetReleased: when the fleet closes the key, a process it
// held open probes at once, for itself, without the lock.
func TestBreakerFleetReleased(t *testing.T) {
	f := &scriptFleet{}
	call, tr, _ := fleetBreaker(t, f, 200, 200)
	f.setOpen("http://api.test:80", time.Minute, true)
	if err := call(); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("held open: %v", err)
	}
	f.setOpen("http://api.test:80", 0, false)
	for i := range 2 {
		if err := call(); err != nil {
			t.Fatalf("call %d after the fleet closed: %v", i, err)
		}
	}
	if tr.Count() != 2 || f.acquired != 0 || len(f.results) != 0 {
		t.Errorf("host saw %d, lock asked %d, results %v; want 2, 0, none", tr.Count(), f.acquired, f.results)
	}
}

// TestBreakerFleetReports: failures are reported with the breaker's
// numbers and whether a success came just before; successes are not
// reported at all; a store that does not answer is asked again later, and
// once the fleet's verdict lapses this process probes on its own.
func TestBreakerFleetReports(t *testing.T) {
	f := &scriptFleet{}
	call, tr, clk := fleetBreaker(t, f, 503, 200, 200, 503, 503, 503, 503)
	for range 7 {
		_ = call()
	}
	want := []bool{false, true, false, false}
	if len(f.failures) != len(want) {
		t.Fatalf("reported %d failures, want %d: %+v", len(f.failures), len(want), f.failures)
	}
	for i, r := range f.failures {
		if r.AfterSuccess != want[i] || r.Threshold != 3 || r.OpenFor != time.Second || r.Window != resilient.DefaultBreakerWindow {
			t.Errorf("report %d: %+v; want AfterSuccess %v, 3, 1s, the default window", i, r, want[i])
		}
	}
	if tr.Count() != 6 {
		t.Errorf("host saw %d, want 6 (tripped on the 3rd failure in a row)", tr.Count())
	}
	f.setOpen("http://api.test:80", 0, true)
	f.probeErr = errors.New("store away")
	clk.Advance(time.Minute)
	var coe *resilient.CircuitOpenError
	if err := call(); !errors.As(err, &coe) || coe.ProbeIn != 250*time.Millisecond {
		t.Fatalf("store silent while the fleet holds the key: %v; want open, asked again in a quarter interval", err)
	}
	f.setOpen("http://api.test:80", 0, false) // the verdict lapsed
	clk.Advance(250 * time.Millisecond)
	_ = call()
	if tr.Count() != 7 || len(f.results) != 0 {
		t.Errorf("host saw %d, results %v; want the local probe sent, nothing reported", tr.Count(), f.results)
	}
}

// TestBreakerFleetHappyPath: a healthy call asks the fleet nothing but its
// epoch.
func TestBreakerFleetHappyPath(t *testing.T) {
	f := &scriptFleet{}
	f.setOpen("other", 0, false)
	call, _, _ := fleetBreaker(t, f, 200, 200, 200)
	for range 3 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if f.epochs.Load() != 3 || f.acquired != 0 || len(f.failures) != 0 {
		t.Errorf("epoch read %d times, lock %d, failures %d; want 3, 0, 0", f.epochs.Load(), f.acquired, len(f.failures))
	}
}
