package resilient_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/resilienttest"
)

func newTestCache(p resilient.StaleCachePolicy) (*resilient.StaleCache, *clock.Fake) {
	c := resilient.NewStaleCache(p)
	clk := clock.NewFake(0)
	resilient.SetStaleCacheClock(c, clk)
	return c, clk
}

var errDown = errors.New("test: dependency down")

// flakyBase answers from respond until down is set, then fails with errDown.
// Ad hoc: the tests flip it down and up again between calls, which the kit's
// scripts, fixed by request number, do not do.
type flakyBase struct {
	down    atomic.Bool
	respond func(*http.Request) *http.Response
}

func (b *flakyBase) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.down.Load() {
		return nil, errDown
	}
	resp := b.respond(r)
	resp.Request = r
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	return resp, nil
}

func okBody(body string) func(*http.Request) *http.Response {
	return func(r *http.Request) *http.Response {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body + " " + r.URL.Path)), ContentLength: -1}
	}
}

// get does a GET for path and returns the body, or the error.
func get(t *testing.T, rt http.RoundTripper, path string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://example.test"+path, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	return resp, readAll(t, resp), nil
}

func TestStaleCacheServesLastGoodBodyWhenServerDies(t *testing.T) {
	version := func(v int) resilienttest.Fault {
		return resilienttest.OnRequests(v, v,
			resilienttest.Header("Date", fmt.Sprintf("Mon, 02 Jan 2006 15:04:0%d GMT", v)),
			resilienttest.Header("Content-Type", "text/plain"),
			resilienttest.Respond(http.StatusOK, fmt.Sprintf("v%d", v)))
	}
	// Two good versions, then the server fails.
	srv := resilienttest.NewServer(t, version(1), version(2), resilienttest.After(2, resilienttest.Status(http.StatusServiceUnavailable)))
	cache, clk := newTestCache(resilient.StaleCachePolicy{})
	c := clientWith(cache.Middleware(), resilient.Timeout(5*time.Second))
	defer c.CloseIdleConnections()

	fetch := func() (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(srv.URL + "/a")
		if err != nil {
			t.Fatal(err)
		}
		return resp, readAll(t, resp)
	}
	for v := 1; v <= 2; v++ {
		if resp, body := fetch(); body != fmt.Sprintf("v%d", v) || resp.Header.Get(resilient.StaleHeader) != "" {
			t.Fatalf("live fetch got %q %v", body, resp.Header)
		}
	}

	clk.Advance(7*time.Second + 900*time.Millisecond)
	resp, body := fetch()
	if resp.StatusCode != 200 || body != "v2" || srv.Count() != 3 {
		t.Fatalf("with the server failing: %d %q after %d requests, want the last good body v2 after 3", resp.StatusCode, body, srv.Count())
	}
	if got := resp.Header.Get(resilient.StaleHeader); got != "7" {
		t.Errorf("%s = %q, want 7 (seconds)", resilient.StaleHeader, got)
	}
	if got := resp.Header.Get("Date"); got != "Mon, 02 Jan 2006 15:04:02 GMT" {
		t.Errorf("Date = %q, want the original", got)
	}
	if resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers %v, want the original ones", resp.Header)
	}

	srv.Close() // now the connection is refused
	c.CloseIdleConnections()
	if _, body := fetch(); body != "v2" {
		t.Errorf("with the server gone: %q, want v2", body)
	}
	resp, err := c.Get(srv.URL + "/never-fetched")
	if err == nil {
		resp.Body.Close()
		t.Error("a URL never fetched was answered; want the error")
	}
}

// countingBody counts what was read from it.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}
func (b *countingBody) Close() error { return nil }

func TestStaleCacheNeverReadsAhead(t *testing.T) {
	var body *countingBody
	base := &flakyBase{respond: func(*http.Request) *http.Response {
		body = &countingBody{r: strings.NewReader(strings.Repeat("x", 100))}
		return &http.Response{StatusCode: 200, Body: body, ContentLength: 100}
	}}
	cache, _ := newTestCache(resilient.StaleCachePolicy{})
	rt := resilient.Chain(base, cache.Middleware())

	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if n := body.read.Load(); n != 0 {
		t.Fatalf("%d bytes read before the caller read any", n)
	}
	p := make([]byte, 10)
	if n, _ := io.ReadFull(resp.Body, p); n != 10 || body.read.Load() != 10 {
		t.Fatalf("caller read %d, source gave %d; want 10 and 10", n, body.read.Load())
	}
	resp.Body.Close() // not read to EOF: not stored

	base.down.Store(true)
	if _, _, err := get(t, rt, "/"); !errors.Is(err, errDown) {
		t.Errorf("after a partial read: err %v, want the failure (nothing stored)", err)
	}
}

func TestStaleCacheDoesNotStore(t *testing.T) {
	withHeader := func(status int, k, v string) func(*http.Request) *http.Response {
		return func(*http.Request) *http.Response {
			return &http.Response{StatusCode: status, Header: http.Header{k: {v}}, Body: io.NopCloser(strings.NewReader("b")), ContentLength: 1}
		}
	}
	big := strings.Repeat("x", 101)
	for _, tc := range []struct {
		name    string
		method  string
		reqHdr  http.Header
		respond func(*http.Request) *http.Response
		policy  resilient.StaleCachePolicy
	}{
		{"POST", http.MethodPost, nil, okBody("b"), resilient.StaleCachePolicy{}},
		{"HEAD", http.MethodHead, nil, okBody("b"), resilient.StaleCachePolicy{}},
		{"404", http.MethodGet, nil, withHeader(404, "X", "y"), resilient.StaleCachePolicy{}},
		{"500", http.MethodGet, nil, withHeader(500, "X", "y"), resilient.StaleCachePolicy{}},
		{"301", http.MethodGet, nil, withHeader(301, "Location", "/b"), resilient.StaleCachePolicy{}},
		{"206", http.MethodGet, nil, withHeader(206, "Content-Range", "bytes 0-0/9"), resilient.StaleCachePolicy{}},
		{"no-store response", http.MethodGet, nil, withHeader(200, "Cache-Control", `private="a,b", No-Store`), resilient.StaleCachePolicy{}},
		{"no-store request", http.MethodGet, http.Header{"Cache-Control": {"no-store"}}, okBody("b"), resilient.StaleCachePolicy{}},
		{"range request", http.MethodGet, http.Header{"Range": {"bytes=0-0"}}, okBody("b"), resilient.StaleCachePolicy{}},
		{"too big, length known", http.MethodGet, nil, func(*http.Request) *http.Response {
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(big)), ContentLength: 101}
		}, resilient.StaleCachePolicy{MaxEntryBytes: 100}},
		{"too big, chunked", http.MethodGet, nil, func(*http.Request) *http.Response {
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(big)), ContentLength: -1}
		}, resilient.StaleCachePolicy{MaxEntryBytes: 100}},
		{"key says no", http.MethodGet, nil, okBody("b"), resilient.StaleCachePolicy{Key: func(*http.Request) string { return "" }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := &flakyBase{respond: tc.respond}
			cache, _ := newTestCache(tc.policy)
			rt := resilient.Chain(base, cache.Middleware())
			req, _ := http.NewRequest(tc.method, "http://example.test/p", nil)
			for k, v := range tc.reqHdr {
				req.Header[k] = v
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)

			base.down.Store(true)
			for _, m := range []string{tc.method, http.MethodGet} {
				req2 := req.Clone(req.Context())
				req2.Method = m
				resp, err := rt.RoundTrip(req2)
				if !errors.Is(err, errDown) {
					if resp != nil {
						resp.Body.Close()
					}
					t.Fatalf("%s after the outage: %v, %v; want the failure (nothing stored)", m, resp, err)
				}
			}
		})
	}
}

func TestStaleCacheFailureResponsePassesThroughOnMiss(t *testing.T) {
	cache, _ := newTestCache(resilient.StaleCachePolicy{})
	base := resilienttest.NewTransport(resilienttest.Respond(http.StatusServiceUnavailable, "down"))
	rt := resilient.Chain(base, cache.Middleware())
	resp, body, err := get(t, rt, "/x")
	if err != nil || resp.StatusCode != 503 || body != "down" || base.Count() != 1 {
		t.Errorf("miss: %v %q %v after %d requests, want the 503 as it was after 1", resp, body, err, base.Count())
	}
}

func TestStaleCacheBounds(t *testing.T) {
	t.Run("entries, least recently used first", func(t *testing.T) {
		base := &flakyBase{respond: okBody("v")}
		cache, _ := newTestCache(resilient.StaleCachePolicy{MaxEntries: 2})
		rt := resilient.Chain(base, cache.Middleware())
		get(t, rt, "/1")
		get(t, rt, "/2")
		base.down.Store(true)
		get(t, rt, "/1") // served from the cache: /1 is now the most recent
		base.down.Store(false)
		get(t, rt, "/3") // evicts /2
		base.down.Store(true)
		assertCached(t, rt, map[string]bool{"/1": true, "/2": false, "/3": true})
	})
	t.Run("bytes", func(t *testing.T) {
		body := strings.Repeat("x", 100)
		base := &flakyBase{respond: func(*http.Request) *http.Response {
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), ContentLength: 100}
		}}
		// Each entry is 100 bytes of body plus its ~20-byte key.
		cache, _ := newTestCache(resilient.StaleCachePolicy{MaxBytes: 250})
		rt := resilient.Chain(base, cache.Middleware())
		for _, p := range []string{"/1", "/2", "/3"} {
			get(t, rt, p)
		}
		base.down.Store(true)
		assertCached(t, rt, map[string]bool{"/1": false, "/2": true, "/3": true})
	})
}

func assertCached(t *testing.T, rt http.RoundTripper, want map[string]bool) {
	t.Helper()
	for p, cached := range want {
		resp, _, err := get(t, rt, p)
		if cached && (err != nil || resp.Header.Get(resilient.StaleHeader) == "") {
			t.Errorf("%s: %v, want a stale response", p, err)
		}
		if !cached && !errors.Is(err, errDown) {
			t.Errorf("%s: %v, want the failure (evicted)", p, err)
		}
	}
}

func TestStaleCacheMaxAge(t *testing.T) {
	base := &flakyBase{respond: okBody("v")}
	cache, clk := newTestCache(resilient.StaleCachePolicy{MaxAge: time.Minute})
	rt := resilient.Chain(base, cache.Middleware())
	get(t, rt, "/a")
	base.down.Store(true)

	clk.Advance(time.Minute)
	resp, body, err := get(t, rt, "/a")
	if err != nil || body != "v /a" || resp.Header.Get(resilient.StaleHeader) != "60" {
		t.Fatalf("at MaxAge: %v %q %v, want the stale body, 60 s old", resp, body, err)
	}
	clk.Advance(time.Nanosecond)
	if _, _, err := get(t, rt, "/a"); !errors.Is(err, errDown) {
		t.Errorf("past MaxAge: %v, want the failure", err)
	}
}

func TestStaleCacheInStandardPipeline(t *testing.T) {
	base := &flakyBase{respond: okBody("v")}
	cache := resilient.NewStaleCache(resilient.StaleCachePolicy{})
	rt := resilient.NewTransport(cache.Record(base), resilient.WithFallback(cache.Fallback))
	if _, body, err := get(t, rt, "/a"); err != nil || body != "v /a" {
		t.Fatal(body, err)
	}
	base.down.Store(true)
	resp, body, err := get(t, rt, "/a")
	if err != nil || body != "v /a" || resp.Header.Get(resilient.StaleHeader) != "0" {
		t.Errorf("after the outage: %v %q %v, want the stale body", resp, body, err)
	}
}

func TestStaleCachePolicyPanics(t *testing.T) {
	for _, tc := range []struct {
		p    resilient.StaleCachePolicy
		want string
	}{
		{resilient.StaleCachePolicy{MaxEntries: -1}, "StaleCachePolicy.MaxEntries"},
		{resilient.StaleCachePolicy{MaxBytes: -1}, "StaleCachePolicy.MaxBytes"},
		{resilient.StaleCachePolicy{MaxEntryBytes: -1}, "StaleCachePolicy.MaxEntryBytes"},
		{resilient.StaleCachePolicy{MaxAge: -1}, "StaleCachePolicy.MaxAge"},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("%+v: panic %v, want one naming %s", tc.p, r, tc.want)
				}
			}()
			resilient.NewStaleCache(tc.p)
		}()
	}
}

func ExampleStaleCache() {
	// The dependency answers once, then goes down.
	srv := resilienttest.StartServer(
		resilienttest.After(1, resilienttest.Status(http.StatusServiceUnavailable)),
		resilienttest.Respond(http.StatusOK, "price: 42"))
	defer srv.Close()

	cache := resilient.NewStaleCache(resilient.StaleCachePolicy{MaxAge: 10 * time.Minute})
	client := &http.Client{Transport: resilient.Chain(nil, cache.Middleware())}
	defer client.CloseIdleConnections()

	for range 2 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body) // read to EOF: now it is stored
		resp.Body.Close()
		fmt.Printf("%d %s (stale: %q)\n", resp.StatusCode, body, resp.Header.Get(resilient.StaleHeader))
	}
	// Output:
	// 200 price: 42 (stale: "")
	// 200 price: 42 (stale: "0")
}

func BenchmarkStaleCacheRecord(b *testing.B) {
	payload := strings.Repeat("x", 1<<10)
	base := fbRoundTrip(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
			Body: io.NopCloser(strings.NewReader(payload)), ContentLength: int64(len(payload)), Request: r}, nil
	})
	cache := resilient.NewStaleCache(resilient.StaleCachePolicy{})
	rt := resilient.Chain(base, cache.Middleware())
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/a", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := rt.RoundTrip(req)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
