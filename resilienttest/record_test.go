package resilienttest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient/resilienttest"
)

func TestRecording(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t)
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		req, _ := http.NewRequest("POST", f.url+"/orders?dry=1", strings.NewReader(`{"sku":7}`))
		req.Header.Set("Idempotency-Key", "key-1")
		req.Header.Set("traceparent", tp)
		before := time.Now()
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		after := time.Now()
		_, _ = get(t, f, "/second")

		rs := f.rec.Requests()
		if len(rs) != 2 || f.rec.Count() != 2 {
			t.Fatalf("recorded %d requests, Count %d; want 2, 2", len(rs), f.rec.Count())
		}
		r := rs[0]
		if r.N != 1 || rs[1].N != 2 {
			t.Errorf("numbers %d, %d; want 1, 2", r.N, rs[1].N)
		}
		if r.Method != "POST" || r.URL.String() != "/orders?dry=1" {
			t.Errorf("got %s %s", r.Method, r.URL)
		}
		if r.Header.Get("Idempotency-Key") != "key-1" || r.Header.Get("Traceparent") != tp {
			t.Errorf("headers %v", r.Header)
		}
		if string(r.Body) != `{"sku":7}` || r.BodyTruncated {
			t.Errorf("body %q (truncated %v)", r.Body, r.BodyTruncated)
		}
		if r.At.Before(before) || r.At.After(after) {
			t.Errorf("At %v not within [%v, %v]", r.At, before, after)
		}
		if r.Host == "" {
			t.Error("no Host recorded")
		}
		if rs[1].Method != "GET" || rs[1].URL.Path != "/second" || len(rs[1].Body) != 0 {
			t.Errorf("second request %s %s %q", rs[1].Method, rs[1].URL, rs[1].Body)
		}
	})
}

func TestRecordingBoundsBody(t *testing.T) {
	tr := resilienttest.NewTransport()
	big := bytes.Repeat([]byte("x"), resilienttest.MaxBody+10)
	resp, err := (&http.Client{Transport: tr}).Post("http://fake.test", "text/plain", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := tr.Requests()[0]
	if len(r.Body) != resilienttest.MaxBody || !r.BodyTruncated {
		t.Errorf("recorded %d bytes, truncated %v; want %d, true", len(r.Body), r.BodyTruncated, resilienttest.MaxBody)
	}
}

func TestConns(t *testing.T) {
	srv := resilienttest.NewServer(t)
	f := fake{srv.Client(), srv.URL, srv}
	for range 3 {
		get(t, f, "/") // keep-alive: one connection
	}
	if n := srv.Conns(); n != 1 {
		t.Errorf("after 3 keep-alive requests Conns() = %d, want 1", n)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	f.client = &http.Client{Transport: tr}
	for range 3 {
		get(t, f, "/")
	}
	if n := srv.Conns(); n != 4 {
		t.Errorf("after 3 more without keep-alive Conns() = %d, want 4", n)
	}
	if n := srv.Count(); n != 6 {
		t.Errorf("Count() = %d, want 6", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t, resilienttest.FailFraction(0.5, 503, 7), resilienttest.Latency(time.Millisecond))
		const workers, each = 8, 10
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					resp, err := f.client.Get(f.url)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					_ = f.rec.Count()
				}
			})
		}
		wg.Wait()
		rs := f.rec.Requests()
		if len(rs) != workers*each || f.rec.Count() != workers*each {
			t.Fatalf("recorded %d, Count %d; want %d", len(rs), f.rec.Count(), workers*each)
		}
		seen := make(map[int]bool)
		for _, r := range rs {
			if r.N < 1 || r.N > workers*each || seen[r.N] {
				t.Fatalf("bad or repeated number %d", r.N)
			}
			seen[r.N] = true
		}
	})
}

func TestTransportCancelledBeforeSend(t *testing.T) {
	tr := resilienttest.NewTransport()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://fake.test", nil)
	if resp, err := tr.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("a cancelled request got a response")
	}
	if n := tr.Count(); n != 0 {
		t.Errorf("a cancelled request was received: Count() = %d", n)
	}
}

func TestTransportClosesRequestBody(t *testing.T) {
	body := &closeSpy{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("POST", "http://fake.test", body)
	resp, err := resilienttest.NewTransport(resilienttest.ResetConn()).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if !body.closed {
		t.Error("request body not closed")
	}
}

type closeSpy struct {
	io.Reader
	closed bool
}

func (c *closeSpy) Close() error { c.closed = true; return nil }

func TestTransportBodyClosed(t *testing.T) {
	// Close ends a pending wait: Drip's pause, Stall's stall.
	for name, fault := range map[string]resilienttest.Fault{
		"drip":  resilienttest.Drip(1, time.Hour),
		"stall": resilienttest.Stall(0),
	} {
		tr := resilienttest.NewTransport(fault)
		resp, err := tr.RoundTrip(mustRequest(t, "GET"))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := resp.Body.Read(make([]byte, 8))
			done <- err
		}()
		resp.Body.Close()
		if err := <-done; err == nil {
			t.Errorf("%s: read on a closed body succeeded", name)
		}
		if _, err := resp.Body.Read(make([]byte, 8)); err == nil {
			t.Errorf("%s: read after Close succeeded", name)
		}
		if n := tr.InFlight(); n != 0 {
			t.Errorf("%s: InFlight() = %d after the body was closed", name, n)
		}
	}
}

func TestTransportHeadHasNoBody(t *testing.T) {
	tr := resilienttest.NewTransport(resilienttest.Respond(200, "hello"))
	resp, err := tr.RoundTrip(mustRequest(t, "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); len(b) != 0 {
		t.Errorf("HEAD body %q", b)
	}
}

func mustRequest(t *testing.T, method string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://fake.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestBadArgumentsPanic(t *testing.T) {
	tests := map[string]func(){
		"FailFirst n":      func() { resilienttest.FailFirst(-1, 503) },
		"FailFirst status": func() { resilienttest.FailFirst(1, 5) },
		"FailFraction p":   func() { resilienttest.FailFraction(1.5, 503, 1) },
		"FailFraction NaN": func() { resilienttest.FailFraction(zero/zero, 503, 1) },
		"Status":           func() { resilienttest.Status(99) },
		"Respond":          func() { resilienttest.Respond(1000, "") },
		"Latency":          func() { resilienttest.Latency(-time.Second) },
		"RetryAfter":       func() { resilienttest.RetryAfter(-time.Second) },
		"ResetMidBody":     func() { resilienttest.ResetMidBody(-1) },
		"Truncate":         func() { resilienttest.Truncate(-1) },
		"Stall":            func() { resilienttest.Stall(-1) },
		"Drip n":           func() { resilienttest.Drip(0, time.Second) },
		"Drip every":       func() { resilienttest.Drip(1, -time.Second) },
		"OnRequests from":  func() { resilienttest.OnRequests(0, 3) },
		"OnRequests to":    func() { resilienttest.OnRequests(3, 2) },
		"After":            func() { resilienttest.After(-1) },
		"Every":            func() { resilienttest.Every(0) },
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.HasPrefix(msg, "resilienttest: ") {
					t.Errorf("panic %v, want a message starting with \"resilienttest: \"", r)
				}
			}()
			fn()
		})
	}
}

var zero float64

// BenchmarkTransport measures one recorded in-memory round trip, the cost a
// test pays per call.
func BenchmarkTransport(b *testing.B) {
	tr := resilienttest.NewTransport()
	req, _ := http.NewRequest("GET", "http://fake.test/", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
