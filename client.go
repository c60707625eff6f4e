package resilient

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilient-go/resilient/internal/clock"
)

// Default durations of the standard pipeline, anchored on Polly's standard
// resilience handler.
const (
	DefaultTotalTimeout   = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
)

// Stage names a stage of the standard pipeline, for Without.
type Stage uint8

// The stages of the standard pipeline, outermost first, except
// StageRateLimit (see its comment).
const (
	StageFallback Stage = iota + 1
	StageIdempotencyKey
	StageTotalTimeout
	StageRetry
	StageHedge
	StageBulkhead
	StageBreaker
	StageAttemptTimeout
	StageTracing
	// StageRateLimit sits between StageBulkhead and StageBreaker; it comes
	// last here so that the values above keep their numbers.
	StageRateLimit
)

// Option configures the standard pipeline of NewClient and NewTransport.
// Options apply in order; a later one wins over an earlier one.
type Option func(*config)

// config is the standard pipeline's settings. A stage is in the pipeline
// when its bit in on is set.
type config struct {
	on             map[Stage]bool
	totalTimeout   time.Duration
	attemptTimeout time.Duration
	retry          RetryPolicy
	idempotency    IdempotencyPolicy
	fallback       FallbackFunc
	hedge          HedgePolicy

	// Tracing stage and telemetry; nil means the global ones.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	bulkhead       BulkheadPolicy
	breaker        BreakerPolicy
	rateLimit      RateLimitPolicy
	logger         *slog.Logger // nil: no logging
}

func defaultConfig() config {
	return config{
		on: map[Stage]bool{
			StageIdempotencyKey: true,
			StageTotalTimeout:   true,
			StageRetry:          true,
			StageBulkhead:       true,
			StageRateLimit:      true,
			StageBreaker:        true,
			StageAttemptTimeout: true,
			StageTracing:        true,
		},
		totalTimeout:   DefaultTotalTimeout,
		attemptTimeout: DefaultAttemptTimeout,
	}
}

// stageOption is a With... option: set stores the stage's settings, the
// stage goes on, and the stages it replaces go off.
func stageOption(st Stage, set func(*config), replaces ...Stage) Option {
	return func(c *config) {
		set(c)
		c.on[st] = true
		for _, r := range replaces {
			c.on[r] = false
		}
	}
}

// Without switches stages of the standard pipeline off. A later With...
// option for the same stage switches it back on.
func Without(stages ...Stage) Option {
	return func(c *config) {
		for _, s := range stages {
			c.on[s] = false
		}
	}
}

// WithTotalTimeout bounds the whole call: every attempt, every backoff
// sleep and the body read. Default 30 s. It panics if d is not positive;
// use Without(StageTotalTimeout) to have no total bound.
func WithTotalTimeout(d time.Duration) Option {
	mustPositive("WithTotalTimeout", d)
	return stageOption(StageTotalTimeout, func(c *config) { c.totalTimeout = d })
}

// WithAttemptTimeout bounds each attempt, including its body read, so a
// hung attempt fails fast and can be retried. Default 10 s. It panics if d
// is not positive; use Without(StageAttemptTimeout) to switch it off.
func WithAttemptTimeout(d time.Duration) Option {
	mustPositive("WithAttemptTimeout", d)
	return stageOption(StageAttemptTimeout, func(c *config) { c.attemptTimeout = d })
}

func mustPositive(name string, d time.Duration) { mustValid(positive(name, d)) }

func positive(name string, d time.Duration) error {
	if d <= 0 {
		return &fieldError{name, "needs a positive duration, got " + d.String()}
	}
	return nil
}

// NewClient returns an *http.Client whose transport is the standard
// pipeline around http.DefaultTransport. Its Timeout field is left zero: the
// pipeline's total timeout already bounds the call and its body read.
func NewClient(opts ...Option) *http.Client {
	return &http.Client{Transport: NewTransport(nil, opts...)}
}

// NewTransport returns the standard pipeline around base (nil means
// http.DefaultTransport). The stages, outermost first, are listed in the
// package documentation; each can be tuned with its With... option and
// switched off with Without.
func NewTransport(base http.RoundTripper, opts ...Option) http.RoundTripper {
	c := defaultConfig()
	for _, o := range opts {
		o(&c)
	}
	return Chain(base, c.stages()...)
}

// stages lists the configured stages in the standard order.
func (c *config) stages() []Middleware {
	var s []Middleware
	add := func(st Stage, m func() Middleware) {
		if c.on[st] {
			s = append(s, m())
		}
	}
	tel := c.telemetry()
	add(StageFallback, func() Middleware { return fallbackStage(c.fallback, tel.sink()) })
	add(StageIdempotencyKey, func() Middleware { return IdempotencyKey(c.idempotency) })
	fused := c.fuseTotalIntoRetry()
	if !fused {
		add(StageTotalTimeout, func() Middleware { return timeoutStage(c.totalTimeout, callTotal) })
	}
	add(StageRetry, func() Middleware {
		p := c.retry
		p.Telemetry = tel
		if fused {
			return retryStage(p, c.totalTimeout)
		}
		return Retry(p)
	})
	add(StageHedge, func() Middleware {
		p := c.hedge
		p.Telemetry = tel
		return Hedge(p)
	})
	add(StageBulkhead, func() Middleware {
		p := c.bulkhead
		p.Telemetry = tel
		return Bulkhead(p)
	})
	add(StageRateLimit, func() Middleware {
		p := c.rateLimit
		p.Telemetry = tel
		if p.MaxCoolDown == 0 {
			p.MaxCoolDown = c.retry.MaxRetryAfter // zero: the same default
		}
		return RateLimit(p)
	})
	add(StageBreaker, func() Middleware {
		p := c.breaker
		p.Telemetry = tel
		return CircuitBreaker(p)
	})
	add(StageAttemptTimeout, func() Middleware { return timeoutStage(c.attemptTimeout, callAttempt) })
	add(StageTracing, func() Middleware { return Tracing(tel.TracingPolicy()) })
	return s
}

// fuseTotalIntoRetry reports whether the Retry stage can enforce the total
// timeout itself (see retryStage), which spares the happy path a context
// and a request copy. It can when every first attempt is bounded within
// the total anyway: an attempt timeout no longer than the total sits below,
// and a bulkhead or rate limit wait cannot push an attempt past it. A
// call may wait for the pool (MaxWait) and then for the adaptive limit
// (AdaptiveMaxWait): with a total shorter than those, the total needs its
// own stage.
func (c *config) fuseTotalIntoRetry() bool {
	if !c.on[StageTotalTimeout] || !c.on[StageRetry] || !c.on[StageAttemptTimeout] {
		return false
	}
	wait := time.Duration(0)
	if c.on[StageBulkhead] {
		wait = c.bulkhead.MaxWait
		if !c.bulkhead.DisableAdaptive {
			wait = clock.Add(wait, orDefault(c.bulkhead.AdaptiveMaxWait, DefaultAdaptiveMaxWait))
		}
	}
	if c.on[StageRateLimit] {
		wait = clock.Add(wait, c.rateLimit.MaxWait)
	}
	// Written so that a huge attempt timeout cannot overflow the sum.
	return wait <= c.totalTimeout && c.attemptTimeout <= c.totalTimeout-wait
}
