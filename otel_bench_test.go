package resilient_test

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/resilient-go/resilient"
)

// otelNopBody is a response body that allocates nothing.
type otelNopBody struct{}

func (otelNopBody) Read([]byte) (int, error) { return 0, nil }
func (otelNopBody) Close() error             { return nil }

// otelStaticRT answers 200 in memory.
type otelStaticRT struct{}

func (otelStaticRT) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Body: otelNopBody{}, Request: r}, nil
}

// BenchmarkTracing measures the stage's happy path: none is the in-memory
// transport alone, noop the stage with the global providers and nothing
// installed (and with the W3C propagator), sdk the stage with an SDK tracer (recording, no exporter), an
// SDK meter and the W3C propagator.
func BenchmarkTracing(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	for _, bc := range []struct {
		name  string
		stage resilient.Middleware
	}{
		{"none", nil},
		{"noop", resilient.Tracing(resilient.TracingPolicy{})},
		{"noop-propagator", resilient.Tracing(resilient.TracingPolicy{Propagator: propagation.TraceContext{}})},
		{"sdk", resilient.Tracing(resilient.TracingPolicy{TracerProvider: tp, MeterProvider: mp, Propagator: propagation.TraceContext{}})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rt := resilient.Chain(otelStaticRT{}, bc.stage)
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/bench?a=1", nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
