package resilient

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// Every config field lands in the policy field it mirrors: the delays and
// limits a behaviour test cannot observe exactly (jitter) are checked here.
func TestConfigWiring(t *testing.T) {
	var c Config
	err := json.Unmarshal([]byte(`{"attempt_timeout": "1s", "total_timeout": "9s",
		"retry": {"max_attempts": 4, "initial_delay": "10ms", "max_delay": "2s", "max_retry_after": "7s",
			"budget": {"ratio": 0.3, "window": "20s", "min_per_second": 3, "unlimited": false}},
		"breaker": {"consecutive_failures": 6, "failure_ratio": 0.7, "min_requests": 11, "window": "30s",
			"open_timeout": "4s", "half_open_requests": 2, "max_keys": 99},
		"bulkhead": {"max_concurrent": 12, "max_wait": "15ms", "max_queue": 5, "max_keys": 98},
		"idempotency": {"header": "X-Request-Key", "methods": ["POST"], "quoted": true},
		"disable": ["tracing"]}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	got := defaultConfig()
	for _, o := range opts {
		o(&got)
	}
	if got.attemptTimeout != time.Second || got.totalTimeout != 9*time.Second || got.on[StageTracing] {
		t.Errorf("timeouts %v, %v, tracing %v", got.attemptTimeout, got.totalTimeout, got.on[StageTracing])
	}
	wantRetry := RetryPolicy{MaxAttempts: 4, InitialDelay: 10 * time.Millisecond, MaxDelay: 2 * time.Second,
		MaxRetryAfter: 7 * time.Second, Budget: &RetryBudget{Ratio: 0.3, Window: 20 * time.Second, MinPerSecond: 3}}
	if !reflect.DeepEqual(got.retry, wantRetry) {
		t.Errorf("retry %+v (budget %+v), want %+v", got.retry, got.retry.Budget, wantRetry)
	}
	wantBreaker := BreakerPolicy{ConsecutiveFailures: 6, FailureRatio: 0.7, MinRequests: 11, Window: 30 * time.Second,
		OpenTimeout: 4 * time.Second, HalfOpenRequests: 2, MaxKeys: 99}
	if !reflect.DeepEqual(got.breaker, wantBreaker) {
		t.Errorf("breaker %+v, want %+v", got.breaker, wantBreaker)
	}
	if want := (BulkheadPolicy{MaxConcurrent: 12, MaxWait: 15 * time.Millisecond, MaxQueue: 5, MaxKeys: 98}); !reflect.DeepEqual(got.bulkhead, want) {
		t.Errorf("bulkhead %+v, want %+v", got.bulkhead, want)
	}
	if want := (IdempotencyPolicy{Header: "X-Request-Key", Methods: []string{"POST"}, Quoted: true}); !reflect.DeepEqual(got.idempotency, want) {
		t.Errorf("idempotency %+v, want %+v", got.idempotency, want)
	}

	c.Retry, c.Hedge = nil, &HedgeConfig{Delay: Duration(30 * time.Millisecond), MaxHedges: 2}
	if opts, err = c.Options(); err != nil {
		t.Fatal(err)
	}
	got = defaultConfig()
	for _, o := range opts {
		o(&got)
	}
	if got.hedge.Delay != 30*time.Millisecond || got.hedge.MaxHedges != 2 || !got.on[StageHedge] || got.on[StageRetry] {
		t.Errorf("hedge %+v, on %v, retry on %v", got.hedge, got.on[StageHedge], got.on[StageRetry])
	}
}
