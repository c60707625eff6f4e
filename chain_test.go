package resilient_test

import (
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// tracer is a stage that notes its name on the way down.
func tracer(name string, trail *[]string) resilient.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			*trail = append(*trail, name)
			return next.RoundTrip(req)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func TestChainFirstStageIsOutermost(t *testing.T) {
	var trail []string
	mem := resilienttest.NewTransport()
	base := tracer("base", &trail)(mem)
	rt := resilient.Chain(base, tracer("a", &trail), nil, tracer("b", &trail), tracer("c", &trail))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []string{"a", "b", "c", "base"}; !reflect.DeepEqual(trail, want) || mem.Count() != 1 {
		t.Errorf("order = %v over %d requests, want %v over 1", trail, mem.Count(), want)
	}
}

func TestChainNilBaseIsDefaultTransport(t *testing.T) {
	if rt := resilient.Chain(nil); rt != http.DefaultTransport {
		t.Errorf("Chain(nil) = %T, want http.DefaultTransport", rt)
	}
}

// idleCounter is a base transport that counts CloseIdleConnections calls.
type idleCounter struct {
	memTransport
	closed int
}

func (c *idleCounter) CloseIdleConnections() { c.closed++ }

func TestCloseIdleConnectionsReachesBase(t *testing.T) {
	base := &idleCounter{}
	client := resilient.NewClient()
	client.Transport = resilient.NewTransport(base)
	client.CloseIdleConnections()
	if base.closed != 1 {
		t.Errorf("standard pipeline: base saw %d CloseIdleConnections, want 1", base.closed)
	}

	base2 := &idleCounter{}
	c2 := &http.Client{Transport: resilient.Chain(base2, resilient.Timeout(time.Second), resilient.Timeout(time.Second))}
	c2.CloseIdleConnections()
	if base2.closed != 1 {
		t.Errorf("chain: base saw %d CloseIdleConnections, want 1", base2.closed)
	}
}

func TestNewTransportWrapsCustomBase(t *testing.T) {
	base := resilienttest.NewTransport()
	c := &http.Client{Transport: resilient.NewTransport(base)}
	resp, err := c.Get("http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := base.Count(); n != 1 {
		t.Errorf("custom base saw %d requests, want 1", n)
	}
	if _, ok := resp.Request.Context().Deadline(); !ok {
		t.Error("the base got a request without the pipeline's deadline")
	}
}

func TestWithoutSwitchesStagesOff(t *testing.T) {
	// The wrapper keeps the request the base got, context and all.
	var got *http.Request
	mem := resilienttest.NewTransport()
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		got = req
		return mem.RoundTrip(req)
	})
	rt := resilient.NewTransport(base, resilient.Without(resilient.StageTotalTimeout, resilient.StageAttemptTimeout))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := got.Context().Deadline(); ok || mem.Count() != 1 {
		t.Errorf("timeouts switched off; the base saw a deadline: %v, over %d requests (want 1)", ok, mem.Count())
	}
}

func TestTimeoutOptionsPanicOnNonPositive(t *testing.T) {
	for name, f := range map[string]func(){
		"WithTotalTimeout":   func() { resilient.WithTotalTimeout(0) },
		"WithAttemptTimeout": func() { resilient.WithAttemptTimeout(-1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a non-positive duration did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestStandardPipelineAttemptDeadlineInsideTotal(t *testing.T) {
	var got *http.Request
	mem := resilienttest.NewTransport()
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		got = req
		return mem.RoundTrip(req)
	})
	rt := resilient.NewTransport(base, resilient.WithTotalTimeout(time.Hour), resilient.WithAttemptTimeout(time.Minute))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d, ok := got.Context().Deadline()
	if !ok || d.Sub(start) > 2*time.Minute || mem.Count() != 1 {
		t.Errorf("base deadline %v after start over %d requests, want the 1 minute attempt timeout over 1", d.Sub(start), mem.Count())
	}
}

// The standard pipeline lets Retry enforce the total timeout lazily; the
// total must still bound every attempt and every wait.
func TestStandardPipelineTotalTimeoutAcrossRetries(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: resilient.NewTransport(tr,
		resilient.WithTotalTimeout(300*time.Millisecond),
		resilient.WithAttemptTimeout(50*time.Millisecond),
		resilient.WithRetry(resilient.RetryPolicy{
			MaxAttempts: 100, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond,
			Budget: &resilient.RetryBudget{Unlimited: true},
		}),
		// Five timeouts in a row would open the breaker, which ends the
		// call early (rightly); this test is about the total timeout.
		resilient.Without(resilient.StageBreaker),
	)}
	start := time.Now()
	resp, err := c.Get(srv.URL)
	if resp != nil {
		resp.Body.Close()
	}
	assertTotalTimeout(t, err, time.Since(start), srv.Count(), 300*time.Millisecond)
}

// An attempt timeout too large to add to the bulkhead's wait must not
// overflow into "the attempt fits in the total" and drop the total bound.
func TestStandardPipelineHugeAttemptTimeoutKeepsTotal(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: resilient.NewTransport(tr,
		resilient.WithTotalTimeout(100*time.Millisecond),
		resilient.WithAttemptTimeout(math.MaxInt64),
		resilient.WithBulkhead(resilient.BulkheadPolicy{MaxWait: time.Nanosecond}),
	)}
	took, err := getWithin(c, srv.URL, 10*time.Second)
	assertTimeout(t, err)
	var te *resilient.TimeoutError
	if !errors.As(err, &te) || te.After != 100*time.Millisecond {
		t.Errorf("got %v, want the 100ms total to run out", err)
	}
	if took > 5*time.Second {
		t.Errorf("took %v, want about the 100ms total", took)
	}
}

// After a retry, the last response's body is bounded by the total too.
func TestStandardPipelineTotalBoundsBodyAfterRetry(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.FailFirst(1, http.StatusServiceUnavailable),
		resilienttest.Drip(1, time.Hour))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: resilient.NewTransport(tr,
		resilient.WithTotalTimeout(200*time.Millisecond),
		resilient.WithAttemptTimeout(200*time.Millisecond),
		resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
	)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("headers should arrive in time: %v", err)
	}
	defer resp.Body.Close()
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	assertTimeout(t, err)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("stalled body read for %v", el)
	}
	if srv.Count() != 2 {
		t.Errorf("server saw %d requests, want the 503 and the retry", srv.Count())
	}
}
