package resilient_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a
// handler shared by stages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records decodes the JSON lines written so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a JSON record: %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLoggerNamesDecisionsNotSecrets is issue 17's must-hold: three calls
// carrying a bearer token and a token query parameter to a host that
// always answers 503, through retries, a 3-failure breaker and a static
// fallback. The log tells the story (retries, the breaker opening, the
// fallbacks, the host) and never the secret.
func TestLoggerNamesDecisionsNotSecrets(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client := resilient.NewClient(
		resilient.WithLogger(log),
		resilient.WithRetry(resilient.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
		resilient.WithBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 3, OpenTimeout: time.Hour}),
		resilient.WithFallback(resilient.StaticFallback(http.StatusOK, nil, "cached")),
	)
	for i := range 3 {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/orders?token=s3cr3t&page=2", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer s3cr3t")
		req.Header.Set("Cookie", "session=s3cr3t")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "cached" {
			t.Fatalf("call %d: body %q, want the fallback's", i+1, body)
		}
	}
	if srv.Count() != 3 {
		t.Errorf("host saw %d requests, want 3 (one call's attempts, then an open breaker)", srv.Count())
	}

	if out := buf.String(); strings.Contains(out, "s3cr3t") {
		t.Fatalf("log holds the secret:\n%s", out)
	}
	authority := "http://" + strings.TrimPrefix(srv.URL, "http://")
	count := map[string]int{}
	for _, r := range buf.records(t) {
		msg, _ := r["msg"].(string)
		count[msg]++
		if r["authority"] != authority {
			t.Errorf("record %v: authority %v, want %s", msg, r["authority"], authority)
		}
		switch msg {
		case "resilient: retrying":
			if r["level"] != "INFO" || r["status"] != float64(503) || r["attempt"] == nil || r["delay"] == nil {
				t.Errorf("retry record %v: want INFO with attempt, delay and status 503", r)
			}
			if u, _ := r["url"].(string); !strings.Contains(u, "token=REDACTED") || !strings.Contains(u, "page=2") {
				t.Errorf("retry record url %q: want the token redacted and the rest kept", u)
			}
		case "resilient: circuit breaker opened":
			if r["level"] != "WARN" || r["from"] != "closed" || r["to"] != "open" {
				t.Errorf("breaker record %v: want WARN closed -> open", r)
			}
		case "resilient: call refused: circuit open":
			if r["reason"] != "circuit_open" {
				t.Errorf("refusal record %v: want reason circuit_open", r)
			}
		}
	}
	for msg, want := range map[string]int{
		"resilient: retrying":                   2,
		"resilient: circuit breaker opened":     1,
		"resilient: call refused: circuit open": 2,
		"resilient: fallback answered":          3,
	} {
		if count[msg] != want {
			t.Errorf("%d records %q, want %d; log:\n%s", count[msg], msg, want, buf.String())
		}
	}
}

// TestLoggerOffByDefault: without WithLogger nothing is logged, not even
// to slog's default logger.
func TestLoggerOffByDefault(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(1, http.StatusServiceUnavailable))
	client := resilient.NewClient(resilient.WithRetry(resilient.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if srv.Count() != 2 || buf.String() != "" {
		t.Errorf("count %d, log %q; want a retry and no log", srv.Count(), buf.String())
	}
}
