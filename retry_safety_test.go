package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// post sends a POST with body through c; key, if set, is the caller's own
// Idempotency-Key.
func post(t *testing.T, c *http.Client, url, key string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`{"title":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// safetyClient is the standard pipeline over the server's transport, with
// a short attempt timeout and a retry policy that waits little.
func safetyClient(srv *resilienttest.Server, opts ...resilient.Option) (*http.Client, *countingRT) {
	base := &countingRT{base: srv.Client().Transport}
	opts = append([]resilient.Option{
		resilient.WithAttemptTimeout(150 * time.Millisecond),
		resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}),
		resilient.Without(resilient.StageTracing),
	}, opts...)
	return &http.Client{Transport: resilient.NewTransport(base, opts...)}, base
}

// TestPOSTWithPipelineKeyNeverDuplicated: servers that ignore
// Idempotency-Key (GitHub, Kubernetes, Elasticsearch, OpenAI) must never
// see a POST twice when the server may have acted on it. On the old code a
// timed-out or 500'd POST was re-sent 3 times, because the injected key
// made it "replayable".
func TestPOSTWithPipelineKeyNeverDuplicated(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    resilienttest.Fault
		opts     []resilient.Option
		attempts int
	}{
		{"slower than the attempt timeout", resilienttest.Latency(600 * time.Millisecond), nil, 1},
		{"500", resilienttest.Status(500), nil, 1},
		{"502", resilienttest.Status(502), nil, 1},
		{"reset after the request arrived", resilienttest.ResetConn(), nil, 1},
		{"503 declines: re-sent", resilienttest.Status(503), nil, 3},
		{"429 declines: re-sent", resilienttest.Status(429), nil, 3},
		{"500, servers deduplicate: re-sent", resilienttest.Status(500),
			[]resilient.Option{resilient.WithIdempotencyKey(resilient.IdempotencyPolicy{ServerDeduplicates: true})}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := resilienttest.NewServer(t, tc.fault)
			c, base := safetyClient(srv, tc.opts...)
			defer c.CloseIdleConnections()
			post(t, c, srv.URL, "")
			if n := base.n.Load(); n != int64(tc.attempts) {
				t.Errorf("%d attempts reached the transport, want %d", n, tc.attempts)
			}
			keys := map[string]bool{}
			for _, r := range srv.Requests() {
				keys[r.Header.Get("Idempotency-Key")] = true
			}
			if len(keys) > 1 || keys[""] {
				t.Errorf("keys %v: want one pipeline key on every attempt", keys)
			}
		})
	}
}

// TestPOSTNotSentIsResent: a POST that never reached the server (refused)
// goes again, key or no key.
func TestPOSTNotSentIsResent(t *testing.T) {
	srv := resilienttest.NewServer(t)
	url := srv.URL
	srv.Close() // refused from now on
	c, base := safetyClient(srv, resilient.Without(resilient.StageIdempotencyKey))
	if _, err := post(t, c, url, ""); err == nil {
		t.Fatal("a POST to a closed port succeeded")
	}
	if n := base.n.Load(); n != 3 {
		t.Errorf("%d attempts, want 3: a refused connection sent nothing", n)
	}
}

// stripeLike answers like an API that deduplicates by key: the first
// request with a key runs for work, then 201; a request with a key in
// flight gets 409; a finished key replays its answer.
type stripeLike struct {
	work    time.Duration
	mu      sync.Mutex
	state   map[string]string // key -> "running" or "done"
	created int
}

func (s *stripeLike) handle(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	switch s.state[key] {
	case "running":
		s.mu.Unlock()
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":{"type":"idempotency_error"}}`)
		return
	case "done":
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		return
	}
	s.state[key] = "running"
	s.created++
	s.mu.Unlock()
	time.Sleep(s.work) // the work goes on whether the client waits or not
	s.mu.Lock()
	s.state[key] = "done"
	s.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// TestKeyedRetryIn409IsNotTheAnswer: an attempt timed out while the server
// kept working; the retry with the same key gets 409 "in progress". That
// 409 is not the call's answer. On the old code the caller got the 409.
func TestKeyedRetryIn409IsNotTheAnswer(t *testing.T) {
	s := &stripeLike{work: 300 * time.Millisecond, state: map[string]string{}}
	srv := resilienttest.NewServer(t, resilienttest.Handle(s.handle))
	base := &countingRT{base: srv.Client().Transport}
	c := &http.Client{Transport: resilient.NewTransport(base,
		resilient.WithAttemptTimeout(100*time.Millisecond),
		resilient.WithRetry(resilient.RetryPolicy{MaxAttempts: 30, InitialDelay: 50 * time.Millisecond,
			MaxDelay: 100 * time.Millisecond, Budget: &resilient.RetryBudget{Unlimited: true}}),
		resilient.Without(resilient.StageTracing))}
	defer c.CloseIdleConnections()
	// 30 attempts at most 100 ms apart outlast the 300 ms of work.
	resp, err := post(t, c, srv.URL, "cus_123")
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("got %v, %v; want the 201 once the first copy finished", resp, err)
	}
	if s.created != 1 {
		t.Errorf("created %d times, want 1", s.created)
	}
	if base.n.Load() < 2 {
		t.Errorf("%d attempts: the timed-out attempt was not retried", base.n.Load())
	}
}

// TestKeyedRetryGivesUpWithTheFirstFailure: when the attempts run out on
// "in progress" 409s, the caller gets the failure that caused the retry,
// not a 409 that reads as a conflict.
func TestKeyedRetryGivesUpWithTheFirstFailure(t *testing.T) {
	s := &stripeLike{work: 2 * time.Second, state: map[string]string{}}
	srv := resilienttest.NewServer(t, resilienttest.Handle(s.handle))
	c := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport,
		resilient.WithAttemptTimeout(100*time.Millisecond),
		resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
		resilient.Without(resilient.StageTracing))}
	defer c.CloseIdleConnections()
	_, err := post(t, c, srv.URL, "cus_789")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want the first attempt's timeout", err)
	}
	if srv.Count() != 3 {
		t.Errorf("%d requests, want 3", srv.Count())
	}
}

// TestHedgeCopy409NeverWins: a hedge of a keyed POST that the server
// answers 409 (the first copy is in flight) is not the winner: the caller
// gets the first copy's 201. On the old code the 409 won and the first
// copy, completed by the server, was cancelled.
func TestHedgeCopy409NeverWins(t *testing.T) {
	s := &stripeLike{work: 200 * time.Millisecond, state: map[string]string{}}
	srv := resilienttest.NewServer(t, resilienttest.Handle(s.handle))
	c := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport,
		resilient.WithHedge(resilient.HedgePolicy{Delay: 20 * time.Millisecond}),
		resilient.Without(resilient.StageTracing))}
	defer c.CloseIdleConnections()
	resp, err := post(t, c, srv.URL, "cus_456")
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("got %v, %v; want the first copy's 201", resp, err)
	}
	if srv.Count() < 2 {
		t.Errorf("%d requests: no hedge was sent", srv.Count())
	}
}

// TestHedgeNeverCopiesAPOSTWithPipelineKey: a hedge is a second write
// unless the caller's key or ServerDeduplicates says the servers
// deduplicate.
func TestHedgeNeverCopiesAPOSTWithPipelineKey(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Latency(100*time.Millisecond))
	c := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport,
		resilient.WithHedge(resilient.HedgePolicy{Delay: 10 * time.Millisecond}),
		resilient.Without(resilient.StageTracing))}
	defer c.CloseIdleConnections()
	if _, err := post(t, c, srv.URL, ""); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("server saw %d copies of a POST with a pipeline key, want 1", n)
	}
}

// TestServerRetryHints: x-should-retry and Stripe-Should-Retry decide,
// both ways. On the old code a "false" on a 503 was retried 3 times and a
// "true" on a 409 was not retried.
func TestServerRetryHints(t *testing.T) {
	for _, tc := range []struct {
		name, header, value string
		status, want        int
	}{
		{"openai false", "X-Should-Retry", "false", 503, 1},
		{"stripe false", "Stripe-Should-Retry", "false", 503, 1},
		{"openai true on 409", "X-Should-Retry", "true", 409, 3},
		{"stripe true on 409", "Stripe-Should-Retry", "true", 409, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := resilienttest.NewServer(t, resilienttest.Header(tc.header, tc.value), resilienttest.Status(tc.status))
			c, _ := safetyClient(srv)
			defer c.CloseIdleConnections()
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := srv.Count(); n != tc.want {
				t.Errorf("%d requests, want %d", n, tc.want)
			}
		})
	}
}

// TestCustomKeyHeaderIsAKey: a key in the configured Header lets a POST be
// re-sent after the server declined it. On the old code only
// Idempotency-Key and X-Idempotency-Key counted, and it was sent once.
func TestCustomKeyHeaderIsAKey(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(1, 503))
	c, _ := safetyClient(srv, resilient.WithIdempotencyKey(resilient.IdempotencyPolicy{Header: "X-Request-Id"}))
	defer c.CloseIdleConnections()
	resp, err := post(t, c, srv.URL, "")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v; want 200 after one retry", resp, err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Header.Get("X-Request-Id") == "" || reqs[0].Header.Get("X-Request-Id") != reqs[1].Header.Get("X-Request-Id") {
		t.Errorf("want 2 requests with one X-Request-Id, got %d", len(reqs))
	}
}

// TestCallersKeyInCustomHeaderIsTrusted: the caller's own key in the
// configured Header makes a POST safe to re-send after a 500.
func TestCallersKeyInCustomHeaderIsTrusted(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(1, 500))
	c, _ := safetyClient(srv, resilient.WithIdempotencyKey(resilient.IdempotencyPolicy{Header: "X-Request-Id"}))
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader("{}"))
	req.Header.Set("X-Request-Id", "mine")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v; want 200 after one retry", resp, err)
	}
	resp.Body.Close()
	if srv.Count() != 2 {
		t.Errorf("%d requests, want 2", srv.Count())
	}
}

func TestKeyHeaderRefusesHopByHop(t *testing.T) {
	for _, h := range []string{"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"} {
		func() {
			defer func() {
				if msg := fmt.Sprint(recover()); !strings.Contains(msg, "cannot carry a key") {
					t.Errorf("Header %q: panic %q, want a refusal", h, msg)
				}
			}()
			resilient.IdempotencyKey(resilient.IdempotencyPolicy{Header: h})
		}()
	}
}

// TestStalled503BodyDoesNotDelay: a 503 that sends 10 of 1000 bytes and
// stalls must not hold the retry or the fallback for the attempt timeout.
// On the old code each took the whole 2 s.
func TestStalled503BodyDoesNotDelay(t *testing.T) {
	stalled := resilienttest.OnRequests(1, 1, resilienttest.Stall(10), resilienttest.Respond(503, strings.Repeat("x", 1000)))
	for _, tc := range []struct {
		name string
		opts []resilient.Option
		want int
	}{
		{"retry", nil, 200},
		{"fallback", []resilient.Option{resilient.Without(resilient.StageRetry),
			resilient.WithFallback(resilient.StaticFallback(203, nil, "cached"))}, 203},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := resilienttest.NewServer(t, stalled)
			opts := append([]resilient.Option{resilient.WithAttemptTimeout(2 * time.Second),
				resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
				resilient.Without(resilient.StageTracing)}, tc.opts...)
			c := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport, opts...)}
			defer c.CloseIdleConnections()
			start := time.Now()
			resp, err := c.Get(srv.URL)
			el := time.Since(start)
			if err != nil || resp.StatusCode != tc.want {
				t.Fatalf("got %v, %v; want %d", resp, err, tc.want)
			}
			resp.Body.Close()
			if el > 500*time.Millisecond {
				t.Errorf("took %v: the stalled body was waited on (attempt timeout 2s)", el)
			}
		})
	}
}
