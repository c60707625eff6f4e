package resilient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// decodeConfig decodes JSON as the docs advise: unknown fields refused.
func decodeConfig(data []byte) (resilient.Config, error) {
	var c resilient.Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&c)
	return c, err
}

// configClient is a client with the standard pipeline configured by cfg.
func configClient(t *testing.T, cfg string, srv *resilienttest.Server) *http.Client {
	t.Helper()
	c, err := decodeConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: resilient.NewTransport(srv.Client().Transport, opts...)}
}

// config is a JSON config with every field the tests below observe; each
// test overrides the ones it is about.
func config(attempt, total string, maxAttempts, maxConcurrent int) string {
	return `{"attempt_timeout": "` + attempt + `", "total_timeout": "` + total + `",
		"retry": {"max_attempts": ` + itoa(maxAttempts) + `, "initial_delay": "1ms", "max_delay": "2ms"},
		"breaker": {"consecutive_failures": 2, "open_timeout": "300ms"},
		"bulkhead": {"max_concurrent": ` + itoa(maxConcurrent) + `}}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestConfigDrivesRetryAndBreaker(t *testing.T) {
	down := resilienttest.Switch(resilienttest.Status(http.StatusServiceUnavailable))
	down.On()
	srv := resilienttest.NewServer(t, down)
	client := configClient(t, config("1s", "5s", 2, 8), srv)

	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || srv.Count() != 2 { // max_attempts: 2
		t.Fatalf("got %d after %d arrivals, want 503 after 2", resp.StatusCode, srv.Count())
	}
	// consecutive_failures: 2 has opened the breaker; open_timeout: 300ms
	// (plus up to 10 % jitter) is how long until the probe.
	_, err = client.Get(srv.URL)
	var open *resilient.CircuitOpenError
	if !errors.As(err, &open) || srv.Count() != 2 {
		t.Fatalf("second call: %v after %d arrivals, want ErrCircuitOpen after 2", err, srv.Count())
	}
	if open.ProbeIn <= 0 || open.ProbeIn > 330*time.Millisecond {
		t.Fatalf("probe in %v, want within open_timeout 300ms (+10%%)", open.ProbeIn)
	}
	down.Off()
	time.Sleep(open.ProbeIn + 10*time.Millisecond) // the breaker's own deadline, then the probe
	resp, err = client.Get(srv.URL)
	if err != nil {
		t.Fatalf("probe after open_timeout: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.Count() != 3 {
		t.Errorf("probe: %d after %d arrivals, want 200 after 3", resp.StatusCode, srv.Count())
	}
}

func TestConfigDrivesTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name, attempt, total string
		arrivals             int
	}{
		// Each attempt is cut at 50ms, so both attempts arrive; without the
		// attempt timeout the first would hang until the total.
		{"attempt_timeout", "50ms", "10s", 2},
		// The total cuts the first attempt long before its attempt timeout.
		{"total_timeout", "10s", "100ms", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hang := resilienttest.Hang()
			srv := resilienttest.NewServer(t, hang)
			client := configClient(t, config(tc.attempt, tc.total, 2, 8), srv)
			start := time.Now()
			_, err := client.Get(srv.URL)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want a timeout", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v; the configured timeouts end the call well within 5s", d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := hang.AwaitAbandoned(ctx, tc.arrivals); err != nil || srv.Count() != tc.arrivals {
				t.Errorf("%d arrivals, %d abandoned; want %d of each", srv.Count(), hang.Abandoned(), tc.arrivals)
			}
		})
	}
}

func TestConfigDrivesBulkhead(t *testing.T) {
	hang := resilienttest.Hang()
	srv := resilienttest.NewServer(t, hang)
	client := configClient(t, config("5s", "10s", 1, 1), srv) // max_concurrent: 1
	done := make(chan error, 1)
	go func() {
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hang.Await(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(srv.URL); !errors.Is(err, resilient.ErrBulkheadFull) {
		t.Errorf("second call while one is in flight: %v, want ErrBulkheadFull", err)
	}
	hang.Release()
	if err := <-done; err != nil {
		t.Errorf("first call: %v", err)
	}
	if srv.Count() != 1 {
		t.Errorf("%d arrivals, want 1", srv.Count())
	}
}

func TestConfigDisable(t *testing.T) {
	for _, tc := range []struct {
		cfg      string
		arrivals int
	}{
		{`{"retry": {"max_attempts": 2, "initial_delay": "1ms", "max_delay": "1ms"}}`, 2},
		{`{"retry": {"max_attempts": 2, "initial_delay": "1ms", "max_delay": "1ms"}, "disable": ["retry"]}`, 1},
		// A disabled hedge section is kept but not applied: retry stays on.
		{`{"retry": {"max_attempts": 2, "initial_delay": "1ms", "max_delay": "1ms"}, "hedge": {"max_hedges": 2}, "disable": ["hedge"]}`, 2},
	} {
		srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
		resp, err := configClient(t, tc.cfg, srv).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if srv.Count() != tc.arrivals {
			t.Errorf("%s: %d arrivals, want %d", tc.cfg, srv.Count(), tc.arrivals)
		}
	}
}

// Bad input is an error that names the field, never a panic.
// TestConfigRateLimit: a rate_limit section drives the RateLimit stage:
// at 1/s with a burst of 1, the second call at once is refused and never
// sent.
func TestConfigRateLimit(t *testing.T) {
	c, err := decodeConfig([]byte(`{"rate_limit": {"rate": 1, "burst": 1}, "disable": ["retry", "tracing"]}`))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	tr := resilienttest.NewTransport(resilienttest.Status(200))
	rt := resilient.NewTransport(tr, opts...)
	for i, want := range []bool{true, false} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://api.test/", nil)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		if ok := err == nil; ok != want || (!want && !errors.Is(err, resilient.ErrRateLimited)) {
			t.Fatalf("call %d: %v; want sent %v", i+1, err, want)
		}
	}
	if tr.Count() != 1 {
		t.Errorf("%d requests sent, want 1", tr.Count())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{`{"attempt_timeout": "-1s"}`, "resilient: config attempt_timeout: needs a positive duration, got -1s"},
		{`{"total_timeout": "-5ms"}`, "resilient: config total_timeout: needs a positive duration, got -5ms"},
		{`{"retry": {"max_attempts": -2}}`, "resilient: config retry.max_attempts: must not be negative, got -2"},
		{`{"retry": {"initial_delay": "10s", "max_delay": "1s"}}`, "resilient: config retry.initial_delay: (10s) is longer than MaxDelay (1s)"},
		{`{"retry": {"budget": {"ratio": 101}}}`, "resilient: config retry.budget.ratio: must be in [0, 100], got 101"},
		{`{"hedge": {"max_hedges": -1}}`, "resilient: config hedge.max_hedges: must not be negative, got -1"},
		{`{"hedge": {"budget": {"window": "1ms"}}}`, "resilient: config hedge.budget.window: must be at least 10ms, got 1ms"},
		{`{"breaker": {"failure_ratio": 7}}`, "resilient: config breaker.failure_ratio: must be in [0, 1], got 7"},
		{`{"breaker": {"open_timeout": "-1s"}}`, "resilient: config breaker.open_timeout: must not be negative, got -1s"},
		{`{"breaker": {"half_open_requests": -3}}`, "resilient: config breaker.half_open_requests: must not be negative, got -3"},
		{`{"bulkhead": {"max_wait": "-1ns"}}`, "resilient: config bulkhead.max_wait: must not be negative, got -1ns"},
		{`{"bulkhead": {"max_keys": -1}}`, "resilient: config bulkhead.max_keys: must not be negative, got -1"},
		{`{"idempotency": {"header": "Idem Key"}}`, `resilient: config idempotency.header: "Idem Key" is not a valid header name`},
		{`{"idempotency": {"header": "Connection"}}`, `resilient: config idempotency.header: "Connection" cannot carry a key`},
		{`{"breaker": {"slow_call_threshold": "-1s"}}`, "resilient: config breaker.slow_call_threshold: must not be negative, got -1s"},
		{`{"bulkhead": {"latency_tolerance": 0.5}}`, "resilient: config bulkhead.latency_tolerance: must be at least 1, got 0.5"},
		{`{"rate_limit": {"rate": -1}}`, "resilient: config rate_limit.rate: must be a finite number not below zero, got -1"},
		{`{"rate_limit": {"max_wait": "-1s"}}`, "resilient: config rate_limit.max_wait: must not be negative, got -1s"},
		{`{"disable": ["retry", "retyr"]}`, `resilient: config disable[1]: unknown stage "retyr"`},
		{`{"retry": {}, "hedge": {}}`, "resilient: config hedge: retry and hedge are alternatives"},
		// Decoding errors: from encoding/json, or from Duration's
		// UnmarshalText, which quotes the text.
		{`{"retry": {"initial_delay": "soon"}}`, `resilient: config: "soon" is not a duration`},
		{`{"attempt_timeout": 250}`, "cannot unmarshal number"},
		{`{"retry": {"max_attempt": 2}}`, `unknown field "max_attempt"`},
		{`{"timeout": "1s"}`, `unknown field "timeout"`},
	} {
		c, err := decodeConfig([]byte(tc.cfg))
		if err == nil {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s: Options panicked: %v", tc.cfg, r)
					}
				}()
				_, err = c.Options()
			}()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestConfigExampleFile(t *testing.T) {
	data, err := os.ReadFile("examples/config/resilient.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Retry == nil || c.Retry.MaxAttempts != 4 || time.Duration(c.Retry.InitialDelay) != 200*time.Millisecond ||
		c.Breaker == nil || time.Duration(c.Breaker.OpenTimeout) != 5*time.Second || c.Bulkhead == nil || c.Bulkhead.MaxConcurrent != 64 {
		t.Errorf("decoded %+v: fields missing", c)
	}
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	tr := resilienttest.NewTransport(resilienttest.FailFirst(1, http.StatusServiceUnavailable))
	resp, err := (&http.Client{Transport: resilient.NewTransport(tr, opts...)}).Get("http://api.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || tr.Count() != 2 {
		t.Errorf("got %d after %d arrivals, want 200 after 2", resp.StatusCode, tr.Count())
	}
	// What it decodes to encodes back to the same config.
	again, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := decodeConfig(again); err != nil || string(mustJSON(t, c2)) != string(again) {
		t.Errorf("round trip: %s, %v; want %s", mustJSON(t, c2), err, again)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDurationText(t *testing.T) {
	var d resilient.Duration
	for in, want := range map[string]time.Duration{"250ms": 250 * time.Millisecond, "1m30s": 90 * time.Second, "0": 0} {
		if err := d.UnmarshalText([]byte(in)); err != nil || time.Duration(d) != want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	if b, _ := resilient.Duration(1500 * time.Millisecond).MarshalText(); string(b) != "1.5s" {
		t.Errorf("MarshalText = %q, want 1.5s", b)
	}
	for _, in := range []string{"soon", "", "5", "1 s"} {
		if err := d.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", in)
		}
	}
}

// Options never panics, and what it returns builds a pipeline without
// panicking: every rule an option panics on is checked first.
func FuzzConfig(f *testing.F) {
	if data, err := os.ReadFile("examples/config/resilient.json"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		`{}`, `{"attempt_timeout": "-1s"}`, `{"retry": {"max_attempts": -2}}`, `{"breaker": {"failure_ratio": 7}}`,
		`{"retry": {"initial_delay": "soon"}}`, `{"hedge": {"delay": "1ns", "max_hedges": 3}, "disable": ["retry"]}`,
		`{"breaker": {"half_open_requests": 5000000000}}`, `{"retry": {"budget": {"ratio": 1e-9, "window": "10ms"}}}`,
		`{"idempotency": {"methods": ["POST", ""]}}`, `{"bulkhead": {"max_concurrent": 1, "max_wait": "1ns"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c resilient.Config
		if json.Unmarshal(data, &c) != nil {
			return
		}
		opts, err := c.Options()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "resilient: config") {
				t.Fatalf("error %q does not start with \"resilient: config\"", err)
			}
			return
		}
		tr := resilienttest.NewTransport()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://api.test/", nil)
		if resp, err := resilient.NewTransport(tr, opts...).RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	})
}
