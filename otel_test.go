package resilient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// otelKit is an SDK with in-memory readers: spans in rec, metrics in reader.
type otelKit struct {
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newOtelKit(t *testing.T) *otelKit {
	t.Helper()
	k := &otelKit{rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	k.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(k.rec))
	k.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(k.reader))
	t.Cleanup(func() {
		_ = k.tp.Shutdown(context.Background())
		_ = k.mp.Shutdown(context.Background())
	})
	return k
}

func (k *otelKit) policy() resilient.TracingPolicy {
	return resilient.TracingPolicy{TracerProvider: k.tp, MeterProvider: k.mp, Propagator: propagation.TraceContext{}}
}

// metric returns the collected metric called name, or fails.
func (k *otelKit) metric(t *testing.T, name string) metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := k.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %q", name)
	return metricdata.Metrics{}
}

func attrOf(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestTracingSpanPerAttempt(t *testing.T) {
	k := newOtelKit(t)
	statuses := []int{503, 503, 200}
	srv := resilienttest.NewServer(t, resilienttest.FailFirst(2, 503))
	c := clientWith(resilient.Tracing(k.policy()))
	defer c.CloseIdleConnections()
	sink := telemetry.NewSink(k.mp)

	ctx, caller := k.tp.Tracer("test").Start(context.Background(), "caller")
	// Stand-in for Retry: three attempts, the 2nd and 3rd marked as resends.
	for n := 1; n <= 3; n++ {
		actx := ctx
		if n > 1 {
			actx = telemetry.WithAttempt(ctx, n)
		}
		req, _ := http.NewRequestWithContext(actx, http.MethodGet, srv.URL+"/x", nil)
		req.Header.Set("X-Caller", "kept")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(req.Header) != 1 {
			t.Fatal("the caller's request was modified")
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != statuses[n-1] {
			t.Fatalf("attempt %d: status %d", n, resp.StatusCode)
		}
		if n < 3 {
			telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.Retry, Attempt: n, Status: resp.StatusCode})
		}
	}
	caller.End()

	var traceparent []string
	for _, r := range srv.Requests() {
		traceparent = append(traceparent, r.Header.Get("Traceparent"))
		if r.Header.Get("X-Caller") != "kept" {
			t.Errorf("the caller's headers were lost: %v", r.Header)
		}
	}
	if len(traceparent) != 3 {
		t.Fatalf("server got %d requests, want 3", len(traceparent))
	}

	var spans []sdktrace.ReadOnlySpan
	var callerSpan sdktrace.ReadOnlySpan
	for _, s := range k.rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			spans = append(spans, s)
		} else {
			callerSpan = s
		}
	}
	if len(spans) != 3 {
		t.Fatalf("got %d client spans, want 3", len(spans))
	}
	seen := map[string]bool{}
	for i, s := range spans {
		if s.Name() != "GET" {
			t.Errorf("span %d name %q", i, s.Name())
		}
		if s.SpanContext().TraceID() != caller.SpanContext().TraceID() || s.Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("span %d is not a child of the caller's span", i)
		}
		rc, ok := attrOf(s, "http.request.resend_count")
		if i == 0 && ok {
			t.Errorf("first attempt has resend_count %v", rc.String())
		}
		if i > 0 && (!ok || rc.AsInt64() != int64(i)) {
			t.Errorf("span %d resend_count = %v (%v), want %d", i, rc.String(), ok, i)
		}
		sc, _ := attrOf(s, "http.response.status_code")
		if sc.AsInt64() != int64(statuses[i]) {
			t.Errorf("span %d status_code %v", i, sc.String())
		}
		wantCode := codes.Unset
		if statuses[i] >= 400 {
			wantCode = codes.Error
			if et, _ := attrOf(s, "error.type"); et.AsString() != "503" {
				t.Errorf("span %d error.type %q", i, et.String())
			}
		}
		if s.Status().Code != wantCode {
			t.Errorf("span %d status %v, want %v", i, s.Status().Code, wantCode)
		}
		for _, key := range []attribute.Key{"http.request.method", "server.address", "server.port", "url.full", "network.protocol.version"} {
			if _, ok := attrOf(s, key); !ok {
				t.Errorf("span %d lacks %s", i, key)
			}
		}
		want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
		if traceparent[i] != want {
			t.Errorf("attempt %d sent traceparent %q, want %q", i+1, traceparent[i], want)
		}
		seen[traceparent[i]] = true
	}
	if len(seen) != 3 {
		t.Errorf("traceparents not distinct: %q", traceparent)
	}

	retries := 0
	for _, ev := range callerSpan.Events() {
		if ev.Name == "resilient.retry" {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("caller span has %d retry events, want 2", retries)
	}

	h := k.metric(t, "http.client.request.duration").Data.(metricdata.Histogram[float64])
	var count uint64
	for _, dp := range h.DataPoints {
		count += dp.Count
		if len(dp.Bounds) != 14 || dp.Bounds[0] != 0.005 || dp.Bounds[13] != 10 {
			t.Errorf("buckets %v", dp.Bounds)
		}
	}
	if count != 3 {
		t.Errorf("duration histogram counted %d attempts, want 3", count)
	}
	sum := k.metric(t, telemetry.RetriesCounter).Data.(metricdata.Sum[int64])
	if len(sum.DataPoints) != 1 || sum.DataPoints[0].Value != 2 {
		t.Errorf("retries counter %+v, want 2", sum.DataPoints)
	}
}

func TestTracingRedactsURL(t *testing.T) {
	k := newOtelKit(t)
	srv := resilienttest.NewServer(t)
	c := clientWith(resilient.Tracing(k.policy()))
	defer c.CloseIdleConnections()

	u := strings.Replace(srv.URL, "http://", "http://alice:s3cret@", 1) +
		"/obj?X-Amz-Credential=AKIA%2F1&a=1&X-Amz-Signature=deadbeef&sig=xyz&Signature=abc"
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans := k.rec.Ended()
	if len(spans) != 1 || srv.Count() != 1 {
		t.Fatalf("got %d spans for %d requests, want 1 for 1", len(spans), srv.Count())
	}
	full, _ := attrOf(spans[0], "url.full")
	want := strings.Replace(srv.URL, "http://", "http://REDACTED:REDACTED@", 1) +
		"/obj?X-Amz-Credential=REDACTED&a=1&X-Amz-Signature=REDACTED&sig=REDACTED&Signature=REDACTED"
	if full.AsString() != want {
		t.Errorf("url.full = %q, want %q", full.AsString(), want)
	}
	for _, secret := range []string{"alice", "s3cret", "AKIA", "deadbeef", "xyz", "abc"} {
		if strings.Contains(full.AsString(), secret) {
			t.Errorf("url.full %q leaks %q", full.AsString(), secret)
		}
	}
}

func TestTracingSpanEndsWithBody(t *testing.T) {
	k := newOtelKit(t)
	srv := resilienttest.NewServer(t, resilienttest.Respond(http.StatusOK, "hello"))
	c := clientWith(resilient.Tracing(k.policy()))
	defer c.CloseIdleConnections()

	for _, tc := range []struct {
		name string
		done func(io.ReadCloser)
	}{
		{"close", func(b io.ReadCloser) { b.Close() }},
		{"eof", func(b io.ReadCloser) { io.ReadAll(b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(k.rec.Ended())
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(k.rec.Ended()); n != before {
				t.Fatal("span ended before the body was done")
			}
			tc.done(resp.Body)
			if n := len(k.rec.Ended()); n != before+1 {
				t.Fatalf("span did not end when the body was done (%d ended)", n-before)
			}
			resp.Body.Close()
		})
	}
}

func TestTracingErrors(t *testing.T) {
	k := newOtelKit(t)
	// Resets every call; a cancelled one gets the context's error instead.
	failing := resilienttest.NewTransport(resilienttest.ResetConn())
	rt := resilient.Chain(failing, resilient.Tracing(k.policy()))

	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v, want the reset", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ = http.NewRequestWithContext(ctx, "FROB", "http://127.0.0.1:1/", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the caller's cancel", err)
	}

	spans := k.rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans", len(spans))
	}
	if s := spans[0]; s.Status().Code != codes.Error {
		t.Errorf("transport error: status %v, want Error", s.Status().Code)
	}
	if et, _ := attrOf(spans[0], "error.type"); et.AsString() != "*net.OpError" {
		t.Errorf("error.type %q", et.String())
	}
	s := spans[1]
	if s.Status().Code != codes.Unset {
		t.Errorf("caller's cancel: status %v, want Unset", s.Status().Code)
	}
	if m, _ := attrOf(s, "http.request.method"); m.AsString() != "_OTHER" {
		t.Errorf("unknown method http.request.method %q, want _OTHER", m.String())
	}
	if s.Name() != "HTTP" {
		t.Errorf("unknown method span name %q", s.Name())
	}
	if m, _ := attrOf(s, "http.request.method_original"); m.AsString() != "FROB" {
		t.Errorf("method_original %q", m.String())
	}
}

// TestTracingNoSDK: with the global providers and nothing installed, the
// stage passes the caller's request through untouched.
func TestTracingNoSDK(t *testing.T) {
	var got *http.Request
	base := otelRTFunc(func(r *http.Request) (*http.Response, error) {
		got = r
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	rt := resilient.Chain(base, resilient.Tracing(resilient.TracingPolicy{}))
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != req {
		t.Error("the request was copied with no SDK installed")
	}
}

type otelRTFunc func(*http.Request) (*http.Response, error)

func (f otelRTFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTracingOptions(t *testing.T) {
	k := newOtelKit(t)
	base := resilienttest.NewTransport()
	rt := resilient.NewTransport(base, resilient.WithTracerProvider(k.tp), resilient.WithMeterProvider(k.mp),
		resilient.WithPropagator(propagation.TraceContext{}))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(k.rec.Ended()); n != 1 {
		t.Fatalf("got %d spans, want 1", n)
	}
	if lastSent(t, base).Header.Get("Traceparent") == "" {
		t.Error("no traceparent injected")
	}
	k.metric(t, "http.client.request.duration")

	k2 := newOtelKit(t)
	rt = resilient.NewTransport(base, resilient.WithTracerProvider(k2.tp), resilient.Without(resilient.StageTracing))
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(k2.rec.Ended()); n != 0 || base.Count() != 2 {
		t.Errorf("Without(StageTracing) still traced %d spans (%d requests, want 2)", n, base.Count())
	}
}

// TestTracingNoSDKPropagates: with no SDK, an incoming trace context is
// still passed on, on a copy of the request.
func TestTracingNoSDKPropagates(t *testing.T) {
	base := resilienttest.NewTransport()
	rt := resilient.Chain(base, resilient.Tracing(resilient.TracingPolicy{Propagator: propagation.TraceContext{}}))
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	req, _ := http.NewRequestWithContext(trace.ContextWithRemoteSpanContext(context.Background(), sc),
		http.MethodGet, "http://127.0.0.1:1/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := lastSent(t, base).Header.Get("Traceparent")
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	if len(req.Header) != 0 {
		t.Error("the caller's request was modified")
	}
}
