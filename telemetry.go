package resilient

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilient-go/resilient/internal/telemetry"
)

// Telemetry is where stages report what they decide (retries, rejections,
// hedges, fallbacks, breaker states, slots in use): the OpenTelemetry
// providers of one pipeline. The zero value means the global providers and
// propagator.
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
}

// TracingPolicy is the Tracing stage's policy for these providers.
func (t Telemetry) TracingPolicy() TracingPolicy {
	return TracingPolicy(t)
}

// sink is where a stage built with t reports: nil (the global default sink)
// when no MeterProvider is set, else counters on t's.
func (t Telemetry) sink() telemetry.Sink {
	if t.MeterProvider == nil {
		return nil
	}
	return telemetry.NewSink(t.MeterProvider)
}
