package resilient

import (
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilient-go/resilient/internal/telemetry"
)

// Telemetry is where stages report what they decide (retries, rejections,
// hedges, fallbacks, breaker states, slots in use): the OpenTelemetry
// providers of one pipeline, and a logger. The zero value means the global
// providers and propagator, and no logging.
//
// NewClient and NewTransport hand theirs (set with WithTracerProvider,
// WithMeterProvider and WithPropagator) to every stage. A pipeline built
// with Chain gets the same metrics and gauges when each stage's policy is
// given the same Telemetry:
//
//	tel := resilient.Telemetry{MeterProvider: mp}
//	rt := resilient.Chain(base,
//		resilient.Retry(resilient.RetryPolicy{Telemetry: tel}),
//		resilient.CircuitBreaker(resilient.BreakerPolicy{Telemetry: tel}),
//		resilient.Tracing(tel.TracingPolicy()))
type Telemetry struct {
	// TracerProvider creates the Tracing stage's attempt spans. Nil means
	// the global provider. The other stages add events to the caller's
	// span and need no provider.
	TracerProvider trace.TracerProvider
	// MeterProvider records the counters, gauges and durations. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
	// Propagator injects trace context into each attempt. Nil means the
	// global propagator.
	Propagator propagation.TextMapPropagator
	// Logger, if set, logs every decision the stages report (see
	// WithLogger). Nil means no logging.
	Logger *slog.Logger
}

// TracingPolicy is the Tracing stage's policy for these providers.
func (t Telemetry) TracingPolicy() TracingPolicy {
	return TracingPolicy{TracerProvider: t.TracerProvider, MeterProvider: t.MeterProvider, Propagator: t.Propagator}
}

// sink is where a stage built with t reports: nil (the global default sink)
// when neither a MeterProvider nor a Logger is set, else counters on t's
// provider, and the logger in front of them. Built once per stage, so the
// logger costs the happy path nothing: stages emit only off it.
func (t Telemetry) sink() telemetry.Sink {
	var s telemetry.Sink
	if t.MeterProvider != nil {
		s = telemetry.NewSink(t.MeterProvider)
	}
	if t.Logger != nil {
		s = telemetry.NewLogSink(t.Logger, s)
	}
	return s
}
