package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// fbCall records what a FallbackFunc was given.
type fbCall struct {
	calls  atomic.Int32
	resp   *http.Response
	err    error
	status int
}

// static returns a FallbackFunc that records its arguments and answers 200
// "fallback".
func (c *fbCall) static() resilient.FallbackFunc {
	f := resilient.StaticFallback(http.StatusOK, http.Header{"X-From": {"fallback"}}, "fallback")
	return func(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
		c.calls.Add(1)
		c.resp, c.err = resp, err
		if resp != nil {
			c.status = resp.StatusCode
		}
		return f(req, resp, err)
	}
}

// readAll reads and closes a response body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func assertFallback(t *testing.T, resp *http.Response, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("err = %v, want the fallback's response", err)
	}
	if got := readAll(t, resp); resp.StatusCode != 200 || got != "fallback" || resp.Header.Get("X-From") != "fallback" {
		t.Fatalf("got %d %q %v, want the fallback's response", resp.StatusCode, got, resp.Header)
	}
}

func TestFallbackRefusedConnection(t *testing.T) {
	srv := resilienttest.NewServer(t)
	srv.Close() // nothing listens there now

	var fb fbCall
	c := clientWith(resilient.Fallback(fb.static()))
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	assertFallback(t, resp, err)
	var op *net.OpError
	if fb.calls.Load() != 1 || fb.resp != nil || !errors.As(fb.err, &op) {
		t.Errorf("fallback got resp %v, err %v; want only the dial error", fb.resp, fb.err)
	}
}

func TestFallback503ConnectionIsReused(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Respond(http.StatusServiceUnavailable, strings.Repeat("busy ", 1000)))

	var fb fbCall
	c := clientWith(resilient.Fallback(fb.static()), resilient.Timeout(5*time.Second))
	defer c.CloseIdleConnections()
	for range 3 {
		resp, err := c.Get(srv.URL)
		assertFallback(t, resp, err)
	}
	if fb.calls.Load() != 3 || fb.status != http.StatusServiceUnavailable || fb.err != nil {
		t.Errorf("fallback calls %d, last status %d err %v; want 3 calls with the 503", fb.calls.Load(), fb.status, fb.err)
	}
	if n, reqs := srv.Conns(), srv.Count(); n != 1 || reqs != 3 {
		t.Errorf("server saw %d requests over %d connections, want 3 over 1: the 503's connection was not drained and reused", reqs, n)
	}
}

func TestFallbackTimeout(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	var fb fbCall
	c := clientWith(resilient.Fallback(fb.static()), resilient.Timeout(50*time.Millisecond))
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	assertFallback(t, resp, err)
	var te *resilient.TimeoutError
	if !errors.As(fb.err, &te) {
		t.Errorf("fallback got %v, want a *TimeoutError", fb.err)
	}
}

func TestFallbackOpenCircuitSendsNothing(t *testing.T) {
	srv := resilienttest.NewServer(t)
	open := fbRoundTrip(func(r *http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("breaker for %s: %w", r.URL.Host, resilient.ErrCircuitOpen)
	})
	var fb fbCall
	c := &http.Client{Transport: resilient.Chain(open, resilient.Fallback(fb.static()))}
	resp, err := c.Get(srv.URL)
	assertFallback(t, resp, err)
	if !errors.Is(fb.err, resilient.ErrCircuitOpen) {
		t.Errorf("fallback got %v, want ErrCircuitOpen", fb.err)
	}
	if n := srv.Count(); n != 0 {
		t.Errorf("server got %d requests, want none", n)
	}
}

func TestFallbackNotCalledOnSuccess(t *testing.T) {
	for _, status := range []int{200, 204, 301, 400, 404, 499} {
		// A 301 is not followed: see CheckRedirect.
		srv := resilienttest.NewServer(t, resilienttest.Header("Location", "/x"), resilienttest.Respond(status, "real"))
		var fb fbCall
		c := clientWith(resilient.Fallback(fb.static()))
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		c.CloseIdleConnections()
		if resp.StatusCode != status || (status != 204 && body != "real") || fb.calls.Load() != 0 || srv.Count() != 1 {
			t.Errorf("status %d: got %d %q after %d requests, fallback called %d times; want the real response", status, resp.StatusCode, body, srv.Count(), fb.calls.Load())
		}
	}
}

func TestFallbackFailureStatuses(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503, 504, 599} {
		base := resilienttest.NewTransport(resilienttest.Respond(status, "x"))
		var fb fbCall
		rt := resilient.Chain(base, resilient.Fallback(fb.static()))
		req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
		resp, err := rt.RoundTrip(req)
		assertFallback(t, resp, err)
		if fb.status != status || base.Count() != 1 {
			t.Errorf("status %d: fallback got status %d after %d requests", status, fb.status, base.Count())
		}
	}
}

func TestFallbackOwnership(t *testing.T) {
	errFb := errors.New("fallback says no")
	for _, tc := range []struct {
		name       string
		f          func(*http.Request, *http.Response, error) (*http.Response, error)
		wantClosed bool   // the 503's body closed by the stage
		wantErr    string // substring; "" for a response
		wantStatus int
	}{
		{"returns the failure", func(_ *http.Request, r *http.Response, err error) (*http.Response, error) { return r, err },
			false, "", 503},
		{"returns another", resilient.StaticFallback(200, nil, "ok"), true, "", 200},
		{"returns an error", func(*http.Request, *http.Response, error) (*http.Response, error) { return nil, errFb },
			true, "fallback says no", 0},
		{"returns both", func(_ *http.Request, r *http.Response, _ error) (*http.Response, error) { return r, errFb },
			true, "fallback says no", 0},
		{"returns nil, nil", func(*http.Request, *http.Response, error) (*http.Response, error) { return nil, nil },
			true, "FallbackFunc returned neither a response nor an error for a call that failed with status 503", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := resilienttest.NewTransport(resilienttest.Respond(503, "unavailable"))
			rt := resilient.Chain(base, resilient.Fallback(tc.f))
			req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
			resp, err := rt.RoundTrip(req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || resp != nil {
					t.Fatalf("got %v, %v; want only an error with %q", resp, err, tc.wantErr)
				}
			} else {
				if err != nil || resp.StatusCode != tc.wantStatus {
					t.Fatalf("got %v, %v; want status %d", resp, err, tc.wantStatus)
				}
				if closed := base.OpenBodies() == 0; closed != tc.wantClosed {
					t.Fatalf("503 body closed before the caller's read: %v, want %v", closed, tc.wantClosed)
				}
				readAll(t, resp)
			}
			if base.OpenBodies() != 0 {
				t.Error("503 body left open")
			}
		})
	}
}

func TestFallbackNilNilKeepsCause(t *testing.T) {
	cause := errors.New("connection refused")
	base := fbRoundTrip(func(*http.Request) (*http.Response, error) { return nil, cause })
	rt := resilient.Chain(base, resilient.Fallback(func(*http.Request, *http.Response, error) (*http.Response, error) { return nil, nil }))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	_, err := rt.RoundTrip(req)
	if !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), "resilient: FallbackFunc returned neither") {
		t.Errorf("err = %v, want a resilient: error wrapping the cause", err)
	}
}

func TestFallbackSkippedWhenCallerGaveUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	base := fbRoundTrip(func(r *http.Request) (*http.Response, error) {
		cancel()
		return nil, r.Context().Err()
	})
	var fb fbCall
	rt := resilient.Chain(base, resilient.Fallback(fb.static()))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.test/", nil)
	_, err := rt.RoundTrip(req)
	if !errors.Is(err, context.Canceled) || fb.calls.Load() != 0 {
		t.Errorf("err = %v, fallback calls %d; want the cancellation and no fallback", err, fb.calls.Load())
	}
}

func TestFallbackEmitsEvent(t *testing.T) {
	// Two 503s, for a fallback and a pass-through; then a success.
	base := resilienttest.NewTransport(resilienttest.FailFirst(2, 503))
	sink := &recordSink{}
	passThrough := func(_ *http.Request, r *http.Response, err error) (*http.Response, error) { return r, err }
	for _, f := range []resilient.FallbackFunc{resilient.StaticFallback(200, nil, ""), passThrough} {
		rt := resilient.Chain(base, resilient.FallbackWithSink(f, sink))
		req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	rt := resilient.Chain(base, resilient.FallbackWithSink(resilient.StaticFallback(200, nil, ""), sink))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || base.Count() != 3 {
		t.Errorf("the success: %d after %d requests, want 200 after 3", resp.StatusCode, base.Count())
	}

	if len(sink.evs) != 1 || sink.evs[0].Kind != telemetry.Fallback || sink.evs[0].Status != 503 {
		t.Errorf("events %+v, want one Fallback event with status 503 (a pass-through or a success is no fallback)", sink.evs)
	}
}

func TestWithFallbackInStandardPipeline(t *testing.T) {
	open := fbRoundTrip(func(*http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("test: %w", resilient.ErrCircuitOpen)
	})
	var fb fbCall
	c := &http.Client{Transport: resilient.NewTransport(open, resilient.WithFallback(fb.static()))}
	resp, err := c.Get("http://example.test/")
	assertFallback(t, resp, err)

	c = &http.Client{Transport: resilient.NewTransport(open, resilient.WithFallback(fb.static()),
		resilient.Without(resilient.StageFallback))}
	if _, err := c.Get("http://example.test/"); !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Errorf("without the stage: err = %v, want ErrCircuitOpen", err)
	}
}

func TestStaticFallbackFreshPerCall(t *testing.T) {
	h := http.Header{"Content-Type": {"text/plain"}}
	f := resilient.StaticFallback(http.StatusServiceUnavailable, h, "try later")
	h.Set("Content-Type", "changed") // the fallback kept its own copy
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	for i := range 2 {
		resp, err := f(req, nil, errors.New("down"))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "try later" || resp.StatusCode != 503 || resp.Status != "503 Service Unavailable" ||
			resp.Header.Get("Content-Type") != "text/plain" || resp.ContentLength != 9 || resp.Request != req {
			t.Fatalf("call %d: %d %q %v", i, resp.StatusCode, got, resp.Header)
		}
		resp.Header.Set("Content-Type", "mutated by caller")
	}
	for _, bad := range []int{0, 99, 600} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "StaticFallback") {
					t.Errorf("status %d: panic %v", bad, r)
				}
			}()
			resilient.StaticFallback(bad, nil, "")
		}()
	}
}

func TestFallbackNilPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Fallback":     func() { resilient.Fallback(nil) },
		"WithFallback": func() { resilient.WithFallback(nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), name) {
					t.Errorf("%s(nil): panic %v", name, r)
				}
			}()
			f()
		}()
	}
}

func ExampleFallback() {
	srv := resilienttest.StartServer(resilienttest.Respond(http.StatusServiceUnavailable, "overloaded"))
	defer srv.Close()

	canned := resilient.StaticFallback(http.StatusOK,
		http.Header{"Content-Type": {"application/json"}}, `{"recommendations":[]}`)
	client := &http.Client{Transport: resilient.Chain(nil, resilient.Fallback(canned))}
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 {"recommendations":[]}
}

func BenchmarkFallback200(b *testing.B) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}
	base := fbRoundTrip(func(*http.Request) (*http.Response, error) { return resp, nil })
	rt := resilient.Chain(base, resilient.Fallback(resilient.StaticFallback(200, nil, "")))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	b.ReportAllocs()
	for b.Loop() {
		sinkResp, _ = rt.RoundTrip(req)
	}
}
