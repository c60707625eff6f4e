package resilient_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
)

// staleStep is one request after the outage, and whether the cache may
// answer it.
type staleStep struct {
	name   string
	header http.Header
	after  time.Duration // clock advance before this step
	served bool
}

// runStale records the response respond gives to a GET with header
// stored, takes the dependency down, and checks each step.
func runStale(t *testing.T, p resilient.StaleCachePolicy, stored http.Header, respond func(*http.Request) *http.Response, steps ...staleStep) {
	t.Helper()
	base := &flakyBase{respond: respond}
	cache, clk := newTestCache(p)
	rt := resilient.Chain(base, cache.Middleware())
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/me", nil)
	req.Header = stored
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	base.down.Store(true)
	for _, s := range steps {
		clk.Advance(s.after)
		req, _ := http.NewRequest(http.MethodGet, "http://example.test/me", nil)
		req.Header = s.header
		resp, err := rt.RoundTrip(req)
		switch {
		case s.served && err != nil:
			t.Errorf("%s: %v, want the stored response", s.name, err)
		case !s.served && !errors.Is(err, errDown):
			body := readAll(t, resp)
			t.Errorf("%s: served %q (%s), want the failure", s.name, body, resp.Header.Get(resilient.StaleHeader))
		case err == nil:
			readAll(t, resp)
		}
	}
}

func withCC(cc string, more ...string) func(*http.Request) *http.Response {
	return func(r *http.Request) *http.Response {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		for i := 0; i+1 < len(more); i += 2 {
			h.Add(more[i], more[i+1])
		}
		return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader("data")), ContentLength: 4}
	}
}

func TestStaleCacheKeepsCredentialsApart(t *testing.T) {
	for _, field := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		t.Run(field, func(t *testing.T) {
			alice := http.Header{field: {"alice-secret"}}
			runStale(t, resilient.StaleCachePolicy{}, alice, withCC(""),
				staleStep{"bob", http.Header{field: {"bob-secret"}}, 0, false},
				staleStep{"no credentials", nil, 0, false},
				staleStep{"alice with another field too", http.Header{field: {"alice-secret"}, "X-Other": {"1"}}, 0, true},
				staleStep{"alice", alice, 0, true})
			runStale(t, resilient.StaleCachePolicy{Private: true}, alice, withCC(""),
				staleStep{"bob, private cache", http.Header{field: {"bob-secret"}}, 0, true})
		})
	}
	t.Run("none", func(t *testing.T) {
		runStale(t, resilient.StaleCachePolicy{}, nil, withCC(""),
			staleStep{"bob", http.Header{"Authorization": {"Bearer bob"}}, 0, false},
			staleStep{"cookie", http.Header{"Cookie": {"s=1"}}, 0, false},
			staleStep{"proxy", http.Header{"Proxy-Authorization": {"Basic eA=="}}, 0, false},
			staleStep{"anonymous", http.Header{}, 0, true})
	})
	t.Run("custom Key", func(t *testing.T) {
		p := resilient.StaleCachePolicy{Key: func(r *http.Request) string { return r.URL.Path }}
		runStale(t, p, http.Header{"Authorization": {"a"}}, withCC(""),
			staleStep{"bob", http.Header{"Authorization": {"b"}}, 0, false},
			staleStep{"alice", http.Header{"Authorization": {"a"}}, 0, true})
	})
}

func TestStaleCacheVary(t *testing.T) {
	fr, en := http.Header{"Accept-Language": {"fr"}}, http.Header{"Accept-Language": {"en"}}
	t.Run("Accept-Language", func(t *testing.T) {
		runStale(t, resilient.StaleCachePolicy{}, fr, withCC("", "Vary", "accept-language , Accept-Encoding"),
			staleStep{"english", en, 0, false},
			staleStep{"none", nil, 0, false},
			staleStep{"french, spaced", http.Header{"Accept-Language": {" fr "}}, 0, true},
			staleStep{"french", fr, 0, true})
	})
	t.Run("two Vary lines", func(t *testing.T) {
		runStale(t, resilient.StaleCachePolicy{}, fr, withCC("", "Vary", "X-A", "Vary", "Accept-Language"),
			staleStep{"english", en, 0, false},
			staleStep{"french", fr, 0, true})
	})
	// In a private cache credentials are not in the key: only Vary keeps
	// these apart.
	for _, field := range []string{"Authorization", "Cookie"} {
		t.Run(field, func(t *testing.T) {
			runStale(t, resilient.StaleCachePolicy{Private: true}, http.Header{field: {"a"}}, withCC("", "Vary", field),
				staleStep{"other", http.Header{field: {"b"}}, 0, false},
				staleStep{"none", nil, 0, false},
				staleStep{"same", http.Header{field: {"a"}}, 0, true})
		})
	}
	t.Run("*", func(t *testing.T) {
		runStale(t, resilient.StaleCachePolicy{Private: true}, fr, withCC("", "Vary", "Accept-Language, *"),
			staleStep{"same request", fr, 0, false})
	})
}

func TestStaleCacheDirectives(t *testing.T) {
	shared, private := resilient.StaleCachePolicy{}, resilient.StaleCachePolicy{Private: true}
	const past = 61 * time.Second
	for _, tc := range []struct {
		name    string
		p       resilient.StaleCachePolicy
		respond func(*http.Request) *http.Response
		steps   []staleStep
	}{
		{"max-age alone: stale-if-error", shared, withCC("max-age=60"), []staleStep{{"past", nil, past, true}}},
		{"no-store", shared, withCC("No-Store"), []staleStep{{"at once", nil, 0, false}}},
		{"no-cache", shared, withCC("no-cache, max-age=60"), []staleStep{{"at once", nil, 0, false}}},
		{"no-cache with fields", private, withCC(`no-cache="Set-Cookie"`), []staleStep{{"at once", nil, 0, false}}},
		{"private, shared cache", shared, withCC("PRIVATE"), []staleStep{{"at once", nil, 0, false}}},
		{"private with fields, shared cache", shared, withCC(`private="X-A, X-B", max-age=9`), []staleStep{{"at once", nil, 0, false}}},
		{"private, private cache", private, withCC("private"), []staleStep{{"later", nil, time.Hour, true}}},
		{"must-revalidate", shared, withCC("max-age=60, must-revalidate"), []staleStep{{"fresh", nil, 60 * time.Second, true}, {"stale", nil, time.Second, false}}},
		{"must-revalidate, private cache", private, withCC("must-revalidate, max-age=60"), []staleStep{{"stale", nil, past, false}}},
		{"must-revalidate, no lifetime", shared, withCC("must-revalidate"), []staleStep{{"at once", nil, time.Second, false}}},
		{"must-revalidate, Age", shared, withCC("must-revalidate, max-age=60", "Age", "50"), []staleStep{{"fresh", nil, 10 * time.Second, true}, {"stale", nil, time.Second, false}}},
		{"must-revalidate, Expires", shared, withCC("must-revalidate", "Date", "Mon, 02 Jan 2006 15:04:05 GMT", "Expires", "Mon, 02 Jan 2006 15:05:05 GMT"),
			[]staleStep{{"fresh", nil, 60 * time.Second, true}, {"stale", nil, time.Second, false}}},
		{"proxy-revalidate, shared cache", shared, withCC("proxy-revalidate, max-age=60"), []staleStep{{"fresh", nil, 0, true}, {"stale", nil, past, false}}},
		{"proxy-revalidate, private cache", private, withCC("proxy-revalidate, max-age=60"), []staleStep{{"stale", nil, past, true}}},
		{"s-maxage, shared cache", shared, withCC("s-maxage=60, max-age=600"), []staleStep{{"fresh", nil, 0, true}, {"stale", nil, past, false}}},
		{"s-maxage, private cache", private, withCC("s-maxage=60"), []staleStep{{"stale", nil, past, true}}},
		{"must-revalidate, s-maxage, private cache", private, withCC("must-revalidate, s-maxage=10, max-age=100"), []staleStep{{"fresh", nil, 99 * time.Second, true}, {"stale", nil, 2 * time.Second, false}}},
		{"request no-cache", shared, withCC(""), []staleStep{{"no-cache", http.Header{"Cache-Control": {"no-cache"}}, 0, false}, {"plain", nil, 0, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) { runStale(t, tc.p, nil, tc.respond, tc.steps...) })
	}
}

func TestStaleCacheNeverReplaysSetCookie(t *testing.T) {
	base := &flakyBase{respond: withCC("", "Set-Cookie", "session=alice", "Set-Cookie", "b=2", "X-Kept", "1")}
	cache, _ := newTestCache(resilient.StaleCachePolicy{})
	rt := resilient.Chain(base, cache.Middleware())
	resp, _, err := get(t, rt, "/")
	if err != nil || len(resp.Header["Set-Cookie"]) != 2 {
		t.Fatalf("live: %v %v, want both cookies passed through", err, resp.Header)
	}
	base.down.Store(true)
	resp, _, err = get(t, rt, "/")
	if err != nil || resp.Header.Get(resilient.StaleHeader) == "" {
		t.Fatalf("stale: %v, want the stored response", err)
	}
	if c, ok := resp.Header["Set-Cookie"]; ok || resp.Header.Get("X-Kept") != "1" {
		t.Errorf("stale answer has Set-Cookie %q, X-Kept %q; want no cookie and the other fields", c, resp.Header.Get("X-Kept"))
	}
}

// TestStaleCacheHostileContentLength: 64 responses each declare 1 MiB and
// send 1 byte; the recorder must not reserve what was only declared.
func TestStaleCacheHostileContentLength(t *testing.T) {
	const n, declared = 64, 1 << 20
	base := &flakyBase{respond: func(*http.Request) *http.Response {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("x")), ContentLength: declared}
	}}
	cache, _ := newTestCache(resilient.StaleCachePolicy{})
	rt := resilient.Chain(base, cache.Middleware())
	before := heapInUse()
	resps := make([]*http.Response, 0, n)
	for range n {
		req, _ := http.NewRequest(http.MethodGet, "http://example.test/big", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp) // open, as a slow body would keep them
	}
	growth := heapInUse() - before
	t.Logf("heap growth for %d responses declaring %d bytes and sending 1: %d KiB", n, declared, growth>>10)
	if growth >= 4<<20 {
		t.Errorf("heap grew %d KiB, want under 4 MiB", growth>>10)
	}
	for _, r := range resps {
		r.Body.Close()
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// The default, shared cache serves a stored response only to the identity
// that fetched it. StaleCachePolicy{Private: true} would serve it to both:
// right only for a client that acts as one user.
func ExampleStaleCachePolicy() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "orders of %s", r.Header.Get("Authorization"))
	}))
	defer srv.Close()

	cache := resilient.NewStaleCache(resilient.StaleCachePolicy{})
	client := &http.Client{Transport: resilient.Chain(nil, cache.Middleware())}
	defer client.CloseIdleConnections()

	for _, user := range []string{"alice", "alice", "bob"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", user)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %d %s", user, resp.StatusCode, body)
		if age := resp.Header.Get(resilient.StaleHeader); age != "" {
			fmt.Print(" (stale)")
		}
		fmt.Println()
	}
	// Output:
	// alice: 200 orders of alice
	// alice: 200 orders of alice (stale)
	// bob: 503 down
}
