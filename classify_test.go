package resilient_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// failingReader fails every read, as a body whose source broke would.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// countingRT counts the requests that reach the base transport.
type countingRT struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(req)
}

// TestCallerMistakesNeitherRetriedNorCounted: requests net/http refuses
// before the network are the caller's mistake. Each kind, sent more times
// than the breaker's threshold through the default pipeline, reaches the
// base transport once per call (no retry), fails with a *RequestError that
// says what was wrong, and leaves the breaker closed for the next good
// call. On the old code each was sent 3 times and opened the breaker.
func TestCallerMistakesNeitherRetriedNorCounted(t *testing.T) {
	// Each case has a server of its own: a cut-short request may reach
	// the server after its call has returned.
	var srv *resilienttest.Server
	for _, tc := range []struct {
		name, reason string
		req          func() *http.Request
		headersSent  bool // a body fault shows only after the headers went out
	}{
		{"CRLF in a header value", "invalid value for header", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			r.Header["X-Injected"] = []string{"a\r\nX-Evil: 1"}
			return r
		}, false},
		{"invalid header name", "invalid header name", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			r.Header["Bad Name"] = []string{"v"}
			return r
		}, false},
		{"invalid method", "invalid method", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			r.Method = "GET THIS"
			return r
		}, false},
		{"unsupported scheme", "unsupported scheme", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, strings.Replace(srv.URL, "http://", "ftp://", 1), nil)
			return r
		}, false},
		{"nil body with a length", "with a nil Body", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, srv.URL, nil)
			r.ContentLength = 10
			return r
		}, false},
		{"body reader fails", "request body read failed", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(failingReader{}))
			r.ContentLength = 10
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(failingReader{}), nil }
			return r
		}, true},
		{"body shorter than its length", "with a body of 3 bytes", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader("abc"))
			r.ContentLength = 10
			return r
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv = resilienttest.NewServer(t, resilienttest.Status(200))
			// A fresh connection per request: net/http replays a
			// replayable request that failed on a reused one by itself.
			tr := srv.Client().Transport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			base := &countingRT{base: tr}
			var changes atomic.Int64
			c := &http.Client{Transport: resilient.NewTransport(base,
				resilient.WithBreaker(resilient.BreakerPolicy{
					OnStateChange: func(string, resilient.State, resilient.State) { changes.Add(1) },
				}),
				resilient.Without(resilient.StageTracing))}
			defer c.CloseIdleConnections()
			const calls = 6 // past the breaker's 5 in a row
			for i := range calls {
				resp, err := c.Do(tc.req())
				if err == nil {
					resp.Body.Close()
					t.Fatalf("call %d: got %d, want an error", i+1, resp.StatusCode)
				}
				var re *resilient.RequestError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("call %d: %v; want a *RequestError saying %q", i+1, err, tc.reason)
				}
				if errors.Is(err, resilient.ErrCircuitOpen) {
					t.Fatalf("call %d: the breaker opened on the caller's mistakes", i+1)
				}
			}
			if n := base.n.Load(); n != calls {
				t.Errorf("base transport saw %d attempts for %d calls: the mistake was retried", n, calls)
			}
			if changes.Load() != 0 {
				t.Errorf("the breaker changed state %d times", changes.Load())
			}
			if st, err := getStatus(t, c, srv.URL); err != nil || st != 200 {
				t.Fatalf("a good call after the mistakes: %d, %v; want 200", st, err)
			}
			// The good call, and, where the headers went out before the
			// body failed, at most one cut-short copy of each mistake.
			lo, hi := 1, 1
			if tc.headersSent {
				hi += calls
			}
			if got := srv.Count(); got < lo || got > hi {
				t.Errorf("server received %d requests, want %d to %d", got, lo, hi)
			}
		})
	}
}

// TestHostCaseSharesCompartments: API.Example.test and api.example.test
// are one host (RFC 4343), so they share one bulkhead pool and one
// breaker. On the old code each spelling had its own.
func TestHostCaseSharesCompartments(t *testing.T) {
	hold := resilienttest.Hang()
	defer hold.Release()
	base := resilienttest.NewTransport(resilienttest.OnPath("/hold", hold), resilienttest.Status(500))
	rt := resilient.Chain(base,
		resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1}),
		resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 2}))

	done := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(mustGet(t, "http://API.Example.test/hold"))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if err := hold.Await(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	_, err := rt.RoundTrip(mustGet(t, "http://api.example.TEST/x"))
	var full *resilient.BulkheadFullError
	if !errors.As(err, &full) || full.Authority != "http://api.example.test:80" {
		t.Fatalf("second spelling while the first holds the only slot: %v; want bulkhead full for http://api.example.test:80", err)
	}
	hold.Release()
	if err := <-done; err != nil {
		t.Fatalf("held call: %v", err)
	}

	for _, u := range []string{"http://Api.example.test/", "http://api.EXAMPLE.test/"} {
		if resp, err := rt.RoundTrip(mustGet(t, u)); err == nil {
			resp.Body.Close()
		}
	}
	_, err = rt.RoundTrip(mustGet(t, "http://api.example.test/"))
	if !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("after 2 failures under two spellings: %v; want the shared breaker open", err)
	}
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
