package resilienttest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient/resilienttest"
)

// fake is what a test needs from either a Server or a Transport.
type fake struct {
	client *http.Client
	url    string
	rec    interface {
		Requests() []resilienttest.Request
		Count() int
		InFlight() int
		PeakInFlight() int
	}
}

// targets runs a test against a Server and against a Transport, so that
// both keep the same behaviour.
var targets = []struct {
	name  string
	start func(t *testing.T, faults ...resilienttest.Fault) fake
}{
	{"server", func(t *testing.T, faults ...resilienttest.Fault) fake {
		srv := resilienttest.NewServer(t, faults...)
		return fake{srv.Client(), srv.URL, srv}
	}},
	{"transport", func(t *testing.T, faults ...resilienttest.Fault) fake {
		tr := resilienttest.NewTransport(faults...)
		return fake{&http.Client{Transport: tr}, "http://fake.test", tr}
	}},
}

func forEachTarget(t *testing.T, run func(t *testing.T, start func(t *testing.T, faults ...resilienttest.Fault) fake)) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) { run(t, tg.start) })
	}
}

// get does a GET and returns status and body, failing the test on error.
func get(t *testing.T, f fake, path string) (int, string) {
	t.Helper()
	resp, err := f.client.Get(f.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func TestFailFirst(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t, resilienttest.FailFirst(2, 503))
		want := []struct {
			code int
			body string
		}{{503, "Service Unavailable"}, {503, "Service Unavailable"}, {200, "OK"}, {200, "OK"}}
		for i, w := range want {
			code, body := get(t, f, "/")
			if code != w.code || body != w.body {
				t.Errorf("request %d: got %d %q, want %d %q", i+1, code, body, w.code, w.body)
			}
		}
		if n := f.rec.Count(); n != len(want) {
			t.Errorf("Count() = %d, want %d", n, len(want))
		}
	})
}

func TestRespondAndHeader(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t,
			resilienttest.Header("Content-Type", "application/json"),
			resilienttest.Respond(201, `{"id":1}`))
		resp, err := f.client.Get(f.url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 || string(b) != `{"id":1}` {
			t.Errorf("got %d %q, want 201 {\"id\":1}", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if resp.ContentLength != 8 {
			t.Errorf("ContentLength = %d, want 8", resp.ContentLength)
		}
	})
}

func TestFailFraction(t *testing.T) {
	failed := func(seed uint64, p float64, n int) []int {
		tr := resilienttest.NewTransport(resilienttest.FailFraction(p, 500, seed))
		c := &http.Client{Transport: tr}
		var out []int
		for i := 1; i <= n; i++ {
			resp, err := c.Get("http://fake.test/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 500 {
				out = append(out, i)
			}
		}
		return out
	}
	a, b := failed(42, 0.3, 1000), failed(42, 0.3, 1000)
	if !equalInts(a, b) {
		t.Error("two runs with seed 42 failed different requests")
	}
	if len(a) < 240 || len(a) > 360 {
		t.Errorf("p = 0.3 failed %d of 1000 requests", len(a))
	}
	if c := failed(43, 0.3, 1000); equalInts(a, c) {
		t.Error("seeds 42 and 43 failed the same requests")
	}
	if n := len(failed(1, 0, 200)); n != 0 {
		t.Errorf("p = 0 failed %d requests", n)
	}
	if n := len(failed(1, 1, 200)); n != 200 {
		t.Errorf("p = 1 failed %d of 200 requests", n)
	}

	// A server with the same seed fails the same request numbers.
	srv := resilienttest.NewServer(t, resilienttest.FailFraction(0.3, 500, 42))
	var got []int
	for i := 1; i <= 50; i++ {
		if code, _ := get(t, fake{srv.Client(), srv.URL, srv}, "/"); code == 500 {
			got = append(got, i)
		}
	}
	var want []int
	for _, n := range a {
		if n <= 50 {
			want = append(want, n)
		}
	}
	if !equalInts(got, want) {
		t.Errorf("server failed %v, transport %v", got, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLatency(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		const d = 50 * time.Millisecond
		f := start(t, resilienttest.Latency(d))
		begin := time.Now()
		if code, _ := get(t, f, "/"); code != 200 {
			t.Errorf("status %d", code)
		}
		if el := time.Since(begin); el < d {
			t.Errorf("answered after %v, want at least %v", el, d)
		}

		// A client that gives up ends the wait: the call fails fast.
		f = start(t, resilienttest.Latency(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", f.url, nil)
		begin = time.Now()
		resp, err := f.client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("got a response, want a deadline error")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		if el := time.Since(begin); el > 10*time.Second {
			t.Errorf("gave up after %v", el)
		}
	})
}

func TestHang(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		h := resilienttest.Hang()
		f := start(t, h, resilienttest.Respond(200, "after"))
		done := make(chan string, 1)
		go func() {
			resp, err := f.client.Get(f.url)
			if err != nil {
				done <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- string(b)
		}()
		await(t, h, 1)
		select {
		case got := <-done:
			t.Fatalf("a held request was answered: %q", got)
		default:
		}
		h.Release()
		if got := <-done; got != "after" {
			t.Errorf("after Release got %q, want %q", got, "after")
		}
		if n := h.Waiting(); n != 0 {
			t.Errorf("Waiting() = %d after Release", n)
		}
		if n := h.Abandoned(); n != 0 {
			t.Errorf("Abandoned() = %d after Release, want 0", n)
		}
		// Once released, later requests pass at once.
		if code, body := get(t, f, "/"); code != 200 || body != "after" {
			t.Errorf("got %d %q", code, body)
		}
	})
}

func await(t *testing.T, h *resilienttest.HangFault, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Await(ctx, n); err != nil {
		t.Fatalf("Await(%d): %v (Waiting = %d)", n, err, h.Waiting())
	}
}

func awaitAbandoned(t *testing.T, h *resilienttest.HangFault, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.AwaitAbandoned(ctx, n); err != nil {
		t.Fatalf("AwaitAbandoned(%d): %v (Abandoned = %d)", n, err, h.Abandoned())
	}
}

// eventually polls cond for up to 10 s; for effects the kit cannot signal.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("after 10s: %s", what)
}

func TestHangEndsWhenClientGoesAway(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		h := resilienttest.Hang()
		f := start(t, h)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", f.url, nil)
			resp, err := f.client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		await(t, h, 1)
		if n := h.Abandoned(); n != 0 {
			t.Errorf("Abandoned() = %d while the request is held", n)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		awaitAbandoned(t, h, 1)
		if n := h.Waiting(); n != 0 {
			t.Errorf("Waiting() = %d once Abandoned() = 1", n)
		}
	})
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	h := resilienttest.Hang()
	srv := resilienttest.StartServer(h)
	defer srv.Close()
	c := srv.Client()
	errc := make(chan error, 3)
	for range 3 {
		go func() {
			resp, err := c.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	await(t, h, 3)
	srv.Close() // must return although Release was never called
	for range 3 {
		if err := <-errc; err == nil {
			t.Error("a request held at Close got a response, want an error")
		}
	}
	if n := h.Waiting(); n != 0 {
		t.Errorf("Waiting() = %d after Close", n)
	}
	// The server let them go, not their clients.
	if n := h.Abandoned(); n != 0 {
		t.Errorf("Abandoned() = %d after Close, want 0", n)
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		fault resilienttest.Fault
		want  string
	}{
		{"seconds", resilienttest.RetryAfter(3 * time.Second), "3"},
		{"rounded up", resilienttest.RetryAfter(1500 * time.Millisecond), "2"},
		{"zero", resilienttest.RetryAfter(0), "0"},
		{"date", resilienttest.RetryAfterDate(date.In(time.FixedZone("x", 3600))), "Wed, 02 Jan 2030 03:04:05 GMT"},
	}
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		for _, tt := range tests {
			f := start(t, tt.fault, resilienttest.FailFirst(1, 503))
			resp, err := f.client.Get(f.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Retry-After"); resp.StatusCode != 503 || got != tt.want {
				t.Errorf("%s: got %d Retry-After %q, want 503 %q", tt.name, resp.StatusCode, got, tt.want)
			}
		}
	})
	if got, err := http.ParseTime("Wed, 02 Jan 2030 03:04:05 GMT"); err != nil || !got.Equal(date) {
		t.Errorf("date form parses to %v, %v", got, err)
	}
}

func TestSelectors(t *testing.T) {
	tr := resilienttest.NewTransport(
		resilienttest.OnPath("/missing", resilienttest.Status(404)),
		resilienttest.OnMethod("DELETE", resilienttest.Status(405)),
		resilienttest.OnRequests(2, 3, resilienttest.Status(502)),
		resilienttest.Every(4, resilienttest.Status(429)),
		resilienttest.After(9, resilienttest.Header("X-Late", "1"), resilienttest.Status(503)),
	)
	c := &http.Client{Transport: tr}
	reqs := []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 200},        // 1
		{"GET", "/", 502},        // 2
		{"GET", "/", 502},        // 3
		{"GET", "/", 429},        // 4
		{"GET", "/missing", 404}, // 5
		{"DELETE", "/", 405},     // 6
		{"GET", "/", 200},        // 7
		{"GET", "/", 429},        // 8
		{"GET", "/", 200},        // 9
		{"GET", "/", 503},        // 10
		{"GET", "/missing", 404}, // 11
	}
	for i, r := range reqs {
		req, _ := http.NewRequest(r.method, "http://fake.test"+r.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.want {
			t.Errorf("request %d (%s %s): %d, want %d", i+1, r.method, r.path, resp.StatusCode, r.want)
		}
		if late := resp.Header.Get("X-Late") == "1"; late != (i+1 == 10) {
			t.Errorf("request %d: X-Late = %v", i+1, late)
		}
	}
}

func TestNestedSelectors(t *testing.T) {
	// Faults inside a selector run in order and can end the script.
	tr := resilienttest.NewTransport(
		resilienttest.OnMethod("POST",
			resilienttest.Every(2, resilienttest.RetryAfter(time.Second), resilienttest.Status(503))),
		resilienttest.Respond(202, "accepted"),
	)
	c := &http.Client{Transport: tr}
	var got []string
	for range 4 {
		resp, err := c.Post("http://fake.test", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.Status+"/"+resp.Header.Get("Retry-After"))
	}
	want := "202 Accepted/,503 Service Unavailable/1,202 Accepted/,503 Service Unavailable/1"
	if strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestSwitch(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		down := resilienttest.Switch(resilienttest.Status(http.StatusServiceUnavailable))
		f := start(t, down, resilienttest.Respond(http.StatusOK, "up"))
		steps := []struct {
			flip func()
			code int
			body string
		}{
			{nil, 200, "up"},
			{down.On, 503, "Service Unavailable"},
			{nil, 503, "Service Unavailable"},
			{down.Off, 200, "up"},
			{down.On, 503, "Service Unavailable"},
		}
		for i, s := range steps {
			if s.flip != nil {
				s.flip()
			}
			if code, body := get(t, f, "/"); code != s.code || body != s.body {
				t.Errorf("request %d: got %d %q, want %d %q", i+1, code, body, s.code, s.body)
			}
		}
		if n := f.rec.Count(); n != len(steps) {
			t.Errorf("Count() = %d, want %d", n, len(steps))
		}
	})
}
