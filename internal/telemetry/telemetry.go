// Package telemetry carries the decisions stages make (a retry, a
// rejection, a hedge, a fallback) to OpenTelemetry: as events on the
// caller's span and as counters. Stages call Emit only off the happy path.
package telemetry

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Kind is what a stage decided.
type Kind uint8

// The decisions stages report.
const (
	Retry              Kind = iota + 1 // another attempt is scheduled
	RetryAfter                         // a Retry-After header set the delay
	BudgetExhausted                    // the retry budget refused a retry or hedge
	BreakerRejected                    // an open circuit refused a call
	BreakerStateChange                 // a breaker changed state
	BulkheadRejected                   // a full bulkhead refused a call
	Hedge                              // a hedged attempt was sent
	Fallback                           // a fallback answered the call
	RateLimited                        // a rate limit or a host's cool-down refused a call
	RateLimitWait                      // a call waited for its turn (Delay: how long)
	CoolDown                           // a 429 or 503 with Retry-After started a host's cool-down
	SlowCall                           // a call ran past its host's slow-call threshold (Delay: how long)
	AdaptiveRejected                   // the adaptive concurrency limit refused a call
)

var names = [...]string{
	Retry:              "resilient.retry",
	RetryAfter:         "resilient.retry_after",
	BudgetExhausted:    "resilient.retry_budget_exhausted",
	BreakerRejected:    "resilient.breaker.rejected",
	BreakerStateChange: "resilient.breaker.state_change",
	BulkheadRejected:   "resilient.bulkhead.rejected",
	Hedge:              "resilient.hedge",
	Fallback:           "resilient.fallback",
	RateLimited:        "resilient.rate_limit.rejected",
	RateLimitWait:      "resilient.rate_limit.waited",
	CoolDown:           "resilient.rate_limit.cool_down",
	SlowCall:           "resilient.slow_call",
	AdaptiveRejected:   "resilient.adaptive_limit.rejected",
}

// Name is the span event name of k.
func (k Kind) Name() string {
	if int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return "resilient.unknown"
}

// Event is one decision. Fields that do not apply to a Kind stay zero.
type Event struct {
	Kind      Kind
	Attempt   int           // the attempt number the decision follows (1 = first)
	Delay     time.Duration // the wait before the next attempt or hedge
	Status    int           // the response status that caused it, if any
	Err       error         // the error that caused it, if any
	Authority string        // scheme://host:port, for breaker, bulkhead and rate limit
	From, To  string        // breaker states, for BreakerStateChange
	// Request is the call the decision was about, where the stage has it
	// (retries, hedges, fallbacks): the log sink names its method,
	// redacted URL and authority. Span events and counters ignore it.
	Request *http.Request
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	Record(ctx context.Context, ev Event)
}

// Emit sends ev to s. A nil s means the default sink: an event on the span
// in ctx and the counters of the global MeterProvider (see NewSink).
func Emit(ctx context.Context, s Sink, ev Event) {
	if s == nil {
		s = defaultSink()
	}
	s.Record(ctx, ev)
}

// SpanEvent adds ev to the recording span in ctx, if there is one.
func SpanEvent(ctx context.Context, ev Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(ev.Kind.Name(), trace.WithAttributes(ev.Attributes()...))
}

// Attributes describes ev as span event attributes.
func (ev Event) Attributes() []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 6)
	if ev.Attempt > 0 {
		attrs = append(attrs, attribute.Int("resilient.attempt", ev.Attempt))
	}
	if ev.Delay > 0 {
		attrs = append(attrs, attribute.Float64("resilient.delay_seconds", ev.Delay.Seconds()))
	}
	if ev.Status > 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", ev.Status))
	}
	if ev.Err != nil {
		attrs = append(attrs, attribute.String("resilient.cause", RedactError(ev.Err)))
	}
	if ev.Authority != "" {
		attrs = append(attrs, attribute.String("resilient.authority", ev.Authority))
	}
	if ev.From != "" || ev.To != "" {
		attrs = append(attrs, attribute.String("resilient.breaker.from", ev.From),
			attribute.String("resilient.breaker.to", ev.To))
	}
	return attrs
}

type attemptKey struct{}

// WithAttempt marks ctx as carrying attempt n (1 = the first) of a call.
// Retry and Hedge set it from the second attempt on, so the Tracing stage
// can record http.request.resend_count; the first attempt pays nothing.
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// AttemptFrom returns the attempt number set by WithAttempt, or 1.
func AttemptFrom(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}

// Gauge is implemented by stages with per-authority state worth observing
// as a metric: a breaker's state (0 closed, 1 half-open, 2 open) or a
// bulkhead's slots in use. Observe must be safe for concurrent use.
type Gauge interface {
	Observe(yield func(authority string, value int64))
}
