package resilient

import (
	"net/http"
	"reflect"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	mnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/resilient-go/resilient/internal/body"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// TracingPolicy configures the Tracing stage. The zero value uses the
// global OpenTelemetry providers and propagator.
type TracingPolicy struct {
	// TracerProvider creates the attempt spans. Nil means the global
	// provider; while no SDK is installed there the stage creates no spans
	// and costs next to nothing, and it starts tracing once one is set.
	TracerProvider trace.TracerProvider

	// MeterProvider records http.client.request.duration. Nil means the
	// global provider.
	MeterProvider metric.MeterProvider

	// Propagator injects the attempt span's context into the attempt's
	// request headers. Nil means the global propagator.
	Propagator propagation.TextMapPropagator
}

// Tracing records each call through it as an OpenTelemetry CLIENT span,
// following the HTTP client semantic conventions: named after the method
// (or "HTTP" for methods outside RFC 9110 and PATCH, whose
// http.request.method is "_OTHER", as the conventions say), with
// http.request.method, server.address, server.port, url.full (user info and
// credential query values replaced by REDACTED, as in the README's list; the
// URL in an error's text too), http.response.status_code,
// error.type, network.protocol.version and, from the second attempt on,
// http.request.resend_count. 4xx, 5xx and transport errors set status
// Error; a call cancelled by its caller does not. The span ends when the
// response body is closed, read to EOF or fails. The span's context is
// injected into a clone of the request's headers, never the caller's. The
// duration of each call until its response headers is recorded in the
// histogram http.client.request.duration (seconds, the conventions'
// buckets from 5 ms to 10 s).
//
// In the standard pipeline Tracing is the innermost stage, so each retry
// and each hedge is its own span, with its own traceparent, under the
// caller's span. It replaces otelhttp.NewTransport: use one or the other,
// not both, or every attempt is traced twice.
func Tracing(p TracingPolicy) Middleware {
	t := &tracingTransport{}
	tp := p.TracerProvider
	if tp == nil || isGlobal(tp, globalTracerProvider) {
		t.followGlobal = true
		tp = otel.GetTracerProvider()
	}
	if _, ok := tp.(tnoop.TracerProvider); ok {
		t.off = true
	}
	t.tracer = tp.Tracer(telemetry.ScopeName, trace.WithSchemaURL(telemetry.SchemaURL))
	if p.Propagator != nil && !isGlobal(p.Propagator, globalPropagator) {
		t.prop = p.Propagator
	}
	mp := p.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(telemetry.ScopeName, metric.WithSchemaURL(telemetry.SchemaURL))
	h, err := m.Float64Histogram("http.client.request.duration",
		metric.WithDescription("Duration of HTTP client requests."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil || h == nil {
		otel.Handle(err)
		h = mnoop.Float64Histogram{}
	}
	t.duration = h
	return func(next http.RoundTripper) http.RoundTripper {
		c := *t
		c.next = httpx.OrDefault(next)
		return &c
	}
}

// WithTracerProvider sets the TracerProvider of the Tracing stage (default:
// the global one) and switches the stage on.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return stageOption(StageTracing, func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets the MeterProvider of the Tracing stage and of the
// counters of the other stages (default: the global one) and switches
// the Tracing stage on.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return stageOption(StageTracing, func(c *config) { c.meterProvider = mp })
}

// WithPropagator sets the propagator of the Tracing stage (default: the
// global one) and switches the stage on.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return stageOption(StageTracing, func(c *config) { c.propagator = p })
}

// telemetry is what the standard pipeline hands to each of its stages.
func (c *config) telemetry() Telemetry {
	return Telemetry{TracerProvider: c.tracerProvider, MeterProvider: c.meterProvider, Propagator: c.propagator, Logger: c.logger}
}

type tracingTransport struct {
	next     http.RoundTripper
	tracer   trace.Tracer
	duration metric.Float64Histogram
	prop     propagation.TextMapPropagator // nil: the global one

	// followGlobal: tracer came from the global provider, which creates
	// no spans until an SDK is set. off: a no-op provider was configured.
	followGlobal, off bool
}

var _ http.RoundTripper = (*tracingTransport)(nil)

// The global delegating provider and propagator, as returned before
// anything is installed. otel.Set... replaces what the getters return, so
// while a getter still returns a value of this type nothing is installed.
// Nil if something was installed before this package initialised.
var (
	globalTracerProvider = unsetGlobal(otel.GetTracerProvider())
	globalPropagator     = unsetGlobal(otel.GetTextMapPropagator())
)

const globalPkg = "go.opentelemetry.io/otel/internal/global"

func unsetGlobal(v any) reflect.Type {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer && t.Elem().PkgPath() == globalPkg {
		return t
	}
	return nil
}

func isGlobal(v any, global reflect.Type) bool {
	return global != nil && reflect.TypeOf(v) == global
}

// tracing reports whether spans can be created: an SDK is behind the
// tracer.
func (t *tracingTransport) tracing() bool {
	if t.followGlobal {
		return !isGlobal(otel.GetTracerProvider(), globalTracerProvider)
	}
	return !t.off
}

// propagator returns the propagator to inject with, or nil when it is the
// global one with nothing installed.
func (t *tracingTransport) propagator() propagation.TextMapPropagator {
	if t.prop != nil {
		return t.prop
	}
	p := otel.GetTextMapPropagator()
	if isGlobal(p, globalPropagator) {
		return nil
	}
	return p
}

func (t *tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tracing := t.tracing()
	prop := t.propagator()
	measure := t.duration.Enabled(ctx)
	if !tracing && prop == nil && !measure {
		return t.next.RoundTrip(req)
	}
	return t.roundTrip(req, tracing, prop, measure)
}

// tracingCall is the per-call state of a traced call, in one allocation:
// the span, the propagation carrier, attribute and option storage, and the
// body wrapper that ends the span.
type tracingCall struct {
	span  trace.Span
	hdr   lazyHeader
	attrs [8]attribute.KeyValue
	opts  [1]metric.RecordOption
	body  body.Body
}

// Release ends the span; body.Body calls it once.
func (c *tracingCall) Release() { c.span.End() }

var spanKindClient = trace.WithSpanKind(trace.SpanKindClient)

func (t *tracingTransport) roundTrip(req *http.Request, tracing bool, prop propagation.TextMapPropagator, measure bool) (*http.Response, error) {
	var start time.Time
	if measure {
		start = time.Now()
	}
	parent := req.Context()
	ctx := parent
	method, known := methodName(req.Method)
	a := httpx.AuthorityOf(req)
	port, _ := strconv.Atoi(a.Port)
	var c *tracingCall
	if tracing || measure {
		c = new(tracingCall)
	}
	if tracing {
		attrs := append(c.attrs[:0],
			semconv.HTTPRequestMethodKey.String(method),
			semconv.ServerAddress(a.Host),
			semconv.ServerPort(port),
			semconv.URLFull(telemetry.RedactURL(req.URL)))
		if !known {
			attrs = append(attrs, semconv.HTTPRequestMethodOriginal(req.Method))
		}
		if n := telemetry.AttemptFrom(parent) - 1; n >= 1 {
			attrs = append(attrs, semconv.HTTPRequestResendCount(n))
		}
		name := method
		if !known {
			name = "HTTP"
		}
		ctx, c.span = t.tracer.Start(ctx, name, spanKindClient, trace.WithAttributes(attrs...))
	}
	out := req
	if prop != nil {
		// Without a span or a measurement, only the carrier is needed.
		var hdr *lazyHeader
		if c != nil {
			hdr = &c.hdr
		} else {
			hdr = new(lazyHeader)
		}
		*hdr = lazyHeader{req: req, ctx: ctx}
		prop.Inject(ctx, hdr)
		if hdr.out != nil {
			out = hdr.out
		}
		*hdr = lazyHeader{} // drop references to the requests
	}
	if out == req && ctx != parent {
		out = req.WithContext(ctx)
	}

	resp, err := t.next.RoundTrip(out)

	recording := tracing && c.span.IsRecording()
	var errType string
	if err != nil {
		errType = errorType(err)
		if recording {
			c.span.SetAttributes(semconv.ErrorTypeKey.String(errType))
			if !callerCancelled(parent, err) {
				c.span.SetStatus(codes.Error, telemetry.RedactError(err))
			}
		}
	} else if resp.StatusCode >= 400 {
		errType = strconv.Itoa(resp.StatusCode)
	}
	if c == nil {
		return resp, err // propagation only
	}
	// The SDK copied the start attributes: c.attrs is free again.
	attrs := append(c.attrs[:0],
		semconv.HTTPRequestMethodKey.String(method),
		semconv.ServerAddress(a.Host),
		semconv.ServerPort(port))
	if err == nil {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(resp.StatusCode),
			semconv.NetworkProtocolVersion(protoVersion(resp)))
		if errType != "" {
			attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
		}
		if recording {
			c.span.SetAttributes(attrs[3:]...)
			if errType != "" {
				c.span.SetStatus(codes.Error, "")
			}
		}
	} else {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
	}
	if measure {
		c.opts[0] = metric.WithAttributes(attrs...)
		t.duration.Record(parent, time.Since(start).Seconds(), c.opts[:]...)
	}
	if !tracing {
		return resp, err
	}
	if err != nil {
		c.span.End()
		return nil, err
	}
	body.TrackInto(resp, &c.body, c)
	return resp, nil
}
