package telemetry

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ScopeName is the instrumentation scope of every tracer and meter the
// library creates.
const ScopeName = "github.com/resilient-go/resilient"

// SchemaURL is the semantic conventions version the attribute names follow.
const SchemaURL = semconv.SchemaURL

// Counter names. Each counts decisions, unit {decision}; rejections carry a
// "reason" attribute.
const (
	RetriesCounter    = "resilient.client.retries"    // Retry events
	HedgesCounter     = "resilient.client.hedges"     // Hedge events
	FallbacksCounter  = "resilient.client.fallbacks"  // Fallback events
	RejectionsCounter = "resilient.client.rejections" // BreakerRejected, BulkheadRejected, BudgetExhausted, RateLimited, AdaptiveRejected
	SlowCallsCounter  = "resilient.client.slow_calls" // SlowCall events
)

// RateLimitWaitHistogram records how long calls waited for their turn
// (RateLimitWait events), in seconds.
const RateLimitWaitHistogram = "resilient.client.rate_limit.wait.duration"

// Values of the "reason" attribute of RejectionsCounter.
const (
	ReasonCircuitOpen  = "circuit_open"
	ReasonBulkheadFull = "bulkhead_full"
	ReasonRetryBudget  = "retry_budget"
	ReasonRateLimited  = "rate_limited"
	ReasonAdaptive     = "adaptive_limit"
)

// reasons is the "reason" of each rejection Kind, on the rejections
// counter and on log lines alike, so that the two can be matched.
var reasons = [...]string{
	BreakerRejected:  ReasonCircuitOpen,
	BulkheadRejected: ReasonBulkheadFull,
	BudgetExhausted:  ReasonRetryBudget,
	RateLimited:      ReasonRateLimited,
	AdaptiveRejected: ReasonAdaptive,
}

// reasonOf is k's reason, or "" when k is no rejection.
func reasonOf(k Kind) string {
	if int(k) < len(reasons) {
		return reasons[k]
	}
	return ""
}

// ReasonKey is the attribute of RejectionsCounter that says which stage
// refused the call.
const ReasonKey = attribute.Key("reason")

// Gauge names, for RegisterGauge.
const (
	BreakerStateGauge = "resilient.client.breaker.state"     // 0 closed, 1 half-open, 2 open
	BulkheadGauge     = "resilient.client.bulkhead.in_use"   // slots held
	AdaptiveGauge     = "resilient.client.adaptive.limit"    // the adaptive concurrency limit
	AuthorityKey      = attribute.Key("resilient.authority") // scheme://host:port
)

// otelSink turns events into span events on the caller's span and counter
// increments. It is immutable after NewSink.
type otelSink struct {
	retries, hedges, fallbacks, rejections, slowCalls metric.Int64Counter

	rateLimitWait metric.Float64Histogram

	// Precomputed so that counting a rejection builds no attribute set;
	// by Kind, as reasons.
	rejectedBy [len(reasons)]metric.AddOption
}

// NewSink returns a Sink that adds each event to the recording span in the
// context it is given (the caller's span: stages that decide sit above the
// Tracing stage) and counts it with instruments from mp. A nil mp means the
// global MeterProvider. Span events need no TracerProvider: they go on
// whatever span the caller started.
func NewSink(mp metric.MeterProvider) Sink {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName, metric.WithSchemaURL(SchemaURL))
	s := &otelSink{
		retries:    counter(m, RetriesCounter, "Retries scheduled after a failed attempt."),
		hedges:     counter(m, HedgesCounter, "Hedged attempts sent."),
		fallbacks:  counter(m, FallbacksCounter, "Calls answered by a fallback."),
		rejections: counter(m, RejectionsCounter, "Calls or retries refused, by reason."),
		slowCalls:  counter(m, SlowCallsCounter, "Calls that ran past their host's slow-call threshold."),

		rateLimitWait: histogram(m, RateLimitWaitHistogram, "Time calls waited for their turn under a rate limit or a host's cool-down."),
	}
	for k, r := range reasons {
		if r != "" {
			s.rejectedBy[k] = metric.WithAttributeSet(attribute.NewSet(ReasonKey.String(r)))
		}
	}
	return s
}

func histogram(m metric.Meter, name, desc string) metric.Float64Histogram {
	h, err := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"))
	if err != nil || h == nil {
		otel.Handle(err)
		return noop.Float64Histogram{}
	}
	return h
}

func counter(m metric.Meter, name, desc string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{decision}"))
	if err != nil || c == nil {
		otel.Handle(err)
		return noop.Int64Counter{}
	}
	return c
}

// defaultSink is the sink of stages given none: the global MeterProvider's
// instruments delegate to an SDK installed later, so building it once is
// enough.
var defaultSink = sync.OnceValue(func() Sink { return NewSink(nil) })

// Record implements Sink.
func (s *otelSink) Record(ctx context.Context, ev Event) {
	SpanEvent(ctx, ev)
	var c metric.Int64Counter
	var opt metric.AddOption
	switch ev.Kind {
	case Retry:
		c = s.retries
	case Hedge:
		c = s.hedges
	case Fallback:
		c = s.fallbacks
	case BreakerRejected, BulkheadRejected, BudgetExhausted, RateLimited, AdaptiveRejected:
		c, opt = s.rejections, s.rejectedBy[ev.Kind]
	case SlowCall:
		c = s.slowCalls
	case RateLimitWait:
		if s.rateLimitWait.Enabled(ctx) {
			s.rateLimitWait.Record(ctx, ev.Delay.Seconds())
		}
		return
	default:
		return
	}
	if !c.Enabled(ctx) {
		return
	}
	if opt == nil {
		c.Add(ctx, 1)
		return
	}
	c.Add(ctx, 1, opt)
}

// gauges describes the gauges RegisterGauge knows.
var gauges = map[string]struct{ desc, unit string }{
	BreakerStateGauge: {"Circuit breaker state per authority: 0 closed, 1 half-open, 2 open.", "1"},
	BulkheadGauge:     {"Bulkhead slots in use per authority.", "{slot}"},
	AdaptiveGauge:     {"Adaptive concurrency limit per authority.", "{call}"},
}

// RegisterGauge observes g as an Int64ObservableGauge named name
// (BreakerStateGauge or BulkheadGauge), with one point per authority,
// attribute AuthorityKey. A nil mp means the global MeterProvider. The
// callback stays registered until the returned Registration is
// unregistered or the provider shuts down.
func RegisterGauge(mp metric.MeterProvider, name string, g Gauge) (metric.Registration, error) {
	info, ok := gauges[name]
	if !ok {
		return nil, errors.New("telemetry: unknown gauge " + name)
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName, metric.WithSchemaURL(SchemaURL))
	inst, err := m.Int64ObservableGauge(name, metric.WithDescription(info.desc), metric.WithUnit(info.unit))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g.Observe(func(authority string, value int64) {
			o.ObserveInt64(inst, value, metric.WithAttributes(AuthorityKey.String(authority)))
		})
		return nil
	}, inst)
}

// RegisterWeakGauge is RegisterGauge for a stage that may be dropped by its
// user: the meter holds the stage only weakly, and the callback is
// unregistered once the stage is collected, so a program that builds
// clients on the fly does not keep every one of them alive. Registration
// errors are ignored: a gauge is not worth failing a client for.
func RegisterWeakGauge[T any, PT interface {
	*T
	Gauge
}](mp metric.MeterProvider, name string, g PT) {
	wp := weak.Make((*T)(g))
	reg, err := RegisterGauge(mp, name, gaugeFunc(func(yield func(string, int64)) {
		if p := wp.Value(); p != nil {
			PT(p).Observe(yield)
		}
	}))
	if err != nil {
		return
	}
	runtime.AddCleanup((*T)(g), func(r metric.Registration) { _ = r.Unregister() }, reg)
}

type gaugeFunc func(yield func(authority string, value int64))

func (f gaugeFunc) Observe(yield func(string, int64)) { f(yield) }
