package bench

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// These tests check that each library is configured as the benchmarks
// assume, so that a number in the table measures what its row says.

func TestEveryLibraryAnswers(t *testing.T) {
	srv := newServer(t, serverOpts{})
	for _, l := range append([]lib{libRaw, libResilient}, peers...) {
		for _, tr := range []struct {
			name string
			base http.RoundTripper
			url  string
		}{
			{"mem", memTransport{http.StatusOK}, "http://example.test/"},
			{"loopback", srv.client, srv.URL},
		} {
			rt := l.wrap(tr.base, cfg{})
			if rt == nil {
				t.Fatalf("%s: the standard configuration cannot be built", l.name)
			}
			if st, err := do(rt, newGet(t, tr.url)); err != nil || st != http.StatusOK {
				t.Errorf("%s over %s: got %d, %v; want 200", l.name, tr.name, st, err)
			}
		}
	}
}

func TestFailedCallMakesThreeAttempts(t *testing.T) {
	for _, l := range append([]lib{libResilient}, peers...) {
		var n atomic.Int64
		rt := l.wrap(countingTransport{memTransport{http.StatusServiceUnavailable}, &n}, failedCall)
		if rt == nil {
			t.Logf("%s: skipped, not configurable yet", l.name)
			continue
		}
		for range 3 {
			if st, err := do(rt, newGet(t, "http://example.test/")); err != nil || st != http.StatusServiceUnavailable {
				t.Errorf("%s: got %d, %v; want the last 503", l.name, st, err)
			}
		}
		if got := n.Load(); got != 3*maxAttempts {
			t.Errorf("%s: 3 calls made %d attempts, want %d", l.name, got, 3*maxAttempts)
		}
	}
}

func TestBreakersOpenAfterFailures(t *testing.T) {
	for _, c := range []cfg{{fastBackoff: true}, {breakerOnly: true}} {
		for _, l := range []lib{libResilient, libFailsafe, libHeimdall} {
			rt := l.wrap(memTransport{http.StatusServiceUnavailable}, c)
			if rt == nil {
				t.Logf("%s %+v: skipped, not configurable yet", l.name, c)
				continue
			}
			req := newGet(t, "http://example.test/")
			openBreaker(t, rt, req)
			if resp, err := rt.RoundTrip(req); resp != nil || !isOpen(err) {
				t.Errorf("%s %+v: got %v, %v after the breaker opened", l.name, c, resp, err)
			}
		}
	}
}

func TestRetryablehttpHasNoBreaker(t *testing.T) {
	if rt := libRetryablehttp.wrap(memTransport{http.StatusOK}, cfg{breakerOnly: true}); rt != nil {
		t.Error("retryablehttp built a breaker-only configuration; it has no breaker")
	}
}

func TestFullJitterStaysInRange(t *testing.T) {
	for n := range 70 {
		want := maxDelay
		if n < 6 {
			want = initialDelay << n
		}
		for range 50 {
			if d := fullJitter(initialDelay, maxDelay, n, nil); d < 0 || d > want {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", n, d, want)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(100 - i)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}
