package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/resilient-go/resilient/internal/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

func TestSinkRejections(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	sink := telemetry.NewSink(mp)

	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	a := "http://127.0.0.1:80"
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.BreakerRejected, Authority: a})
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.BreakerRejected, Authority: a})
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.BulkheadRejected, Authority: a})
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.BudgetExhausted, Attempt: 2, Err: errors.New("boom")})
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.BreakerStateChange, Authority: a, From: "closed", To: "open"})
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.Hedge, Attempt: 2})
	telemetry.Emit(ctx, sink, telemetry.Event{Kind: telemetry.Fallback})
	span.End()

	var names []string
	for _, ev := range rec.Ended()[0].Events() {
		names = append(names, ev.Name)
	}
	want := "resilient.breaker.rejected resilient.breaker.rejected resilient.bulkhead.rejected " +
		"resilient.retry_budget_exhausted resilient.breaker.state_change resilient.hedge resilient.fallback"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events %q\nwant   %q", got, want)
	}
	ev := rec.Ended()[0].Events()[0]
	if len(ev.Attributes) != 1 || ev.Attributes[0] != attribute.String("resilient.authority", a) {
		t.Errorf("breaker event attributes %v", ev.Attributes)
	}

	m := collect(t, reader)
	byReason := map[string]int64{}
	for _, dp := range m[telemetry.RejectionsCounter].(metricdata.Sum[int64]).DataPoints {
		r, _ := dp.Attributes.Value(telemetry.ReasonKey)
		byReason[r.AsString()] = dp.Value
	}
	if byReason[telemetry.ReasonCircuitOpen] != 2 || byReason[telemetry.ReasonBulkheadFull] != 1 ||
		byReason[telemetry.ReasonRetryBudget] != 1 || len(byReason) != 3 {
		t.Errorf("rejections by reason %v", byReason)
	}
	for name, want := range map[string]int64{telemetry.HedgesCounter: 1, telemetry.FallbacksCounter: 1} {
		dps := m[name].(metricdata.Sum[int64]).DataPoints
		if len(dps) != 1 || dps[0].Value != want {
			t.Errorf("%s = %+v, want %d", name, dps, want)
		}
	}
}

// TestEmitNilSinkNoSpan: the default sink with no span and no SDK does
// nothing and does not panic.
func TestEmitNilSinkNoSpan(t *testing.T) {
	telemetry.Emit(context.Background(), nil, telemetry.Event{Kind: telemetry.Retry, Attempt: 1})
}

type fakeGauge map[string]int64

func (g fakeGauge) Observe(yield func(string, int64)) {
	for a, v := range g {
		yield(a, v)
	}
}

func TestRegisterGauge(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	g := fakeGauge{"http://a:80": 2, "https://b:443": 0}
	reg, err := telemetry.RegisterGauge(mp, telemetry.BreakerStateGauge, g)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	if _, err := telemetry.RegisterGauge(mp, "nope", g); err == nil {
		t.Error("unknown gauge name accepted")
	}

	got := map[string]int64{}
	for _, dp := range collect(t, reader)[telemetry.BreakerStateGauge].(metricdata.Gauge[int64]).DataPoints {
		a, _ := dp.Attributes.Value(telemetry.AuthorityKey)
		got[a.AsString()] = dp.Value
	}
	if len(got) != 2 || got["http://a:80"] != 2 || got["https://b:443"] != 0 {
		t.Errorf("gauge points %v", got)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://h/p?a=1", "https://h/p?a=1"},
		{"https://u:p@h/p", "https://REDACTED:REDACTED@h/p"},
		{"https://u@h/", "https://REDACTED:REDACTED@h/"},
		{"https://h/?sig=x", "https://h/?sig=REDACTED"},
		{"https://h/?SIG=x&a=b", "https://h/?SIG=REDACTED&a=b"},
		{"https://h/?a=b&AWSAccessKeyId=k&Signature=s", "https://h/?a=b&AWSAccessKeyId=REDACTED&Signature=REDACTED"},
		{"https://h/?X-Goog-Signature=x#frag", "https://h/?X-Goog-Signature=REDACTED#frag"},
		{"https://h/?X-Amz-Security-Token=t&X-Amz-Credential=c", "https://h/?X-Amz-Security-Token=REDACTED&X-Amz-Credential=REDACTED"},
		{"https://h/?X%2DAmz%2DSignature=x", "https://h/?X%2DAmz%2DSignature=REDACTED"},
		{"https://h/?sig&sig=", "https://h/?sig&sig=REDACTED"},
		{"https://h/?&&sig=a=b&", "https://h/?&&sig=REDACTED&"},
		{"https://h/?Access_Token=t&tokens=1&Key=k&monkey=1", "https://h/?Access_Token=REDACTED&tokens=1&Key=REDACTED&monkey=1"},
		{"https://h/?x-goog-date=1&x-amz=2&X-Amz-=3", "https://h/?x-goog-date=REDACTED&x-amz=2&X-Amz-=REDACTED"},
		{"https://h/?api%5Fkey=k&PassWord=p", "https://h/?api%5Fkey=REDACTED&PassWord=REDACTED"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := telemetry.RedactURL(u); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	ue := &url.Error{Op: "Get", URL: "https://u:p@h/x?token=t0k&a=1", Err: errors.New("refused")}
	wrapped := fmt.Errorf("attempt 2: %w", ue)
	want := `attempt 2: Get "https://REDACTED:REDACTED@h/x?token=REDACTED&a=1": refused`
	if got := telemetry.RedactError(wrapped); got != want {
		t.Errorf("RedactError = %q, want %q", got, want)
	}
	for _, a := range (telemetry.Event{Err: wrapped}).Attributes() {
		if strings.Contains(a.Value.String(), "t0k") {
			t.Errorf("event attribute %s = %q leaks the token", a.Key, a.Value.String())
		}
	}
	if got := telemetry.RedactError(errors.New("plain")); got != "plain" {
		t.Errorf("RedactError(plain) = %q", got)
	}
}

func TestRedactQueryNoAlloc(t *testing.T) {
	q := "a=1&b=2&c=%20x"
	if n := testing.AllocsPerRun(100, func() { _ = telemetry.RedactQuery(q) }); n != 0 {
		t.Errorf("RedactQuery of a clean query allocates %v times", n)
	}
}

func FuzzRedactQuery(f *testing.F) {
	for _, s := range []string{"", "a=1", "sig=x&a=b", "X%2DAmz-Signature=1&&=&", "Signature", "sig==&sig=REDACTED"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := telemetry.RedactQuery(q)
		in, out := strings.Split(q, "&"), strings.Split(got, "&")
		if len(in) != len(out) {
			t.Fatalf("RedactQuery(%q) = %q: %d parts, want %d", q, got, len(out), len(in))
		}
		for i := range in {
			k, _, hasValue := strings.Cut(in[i], "=")
			if out[i] == in[i] {
				if hasValue && isSig(k) && !strings.HasSuffix(in[i], "="+telemetry.Redacted) {
					t.Fatalf("RedactQuery(%q) kept signature %q", q, in[i])
				}
				continue
			}
			if !hasValue || !isSig(k) || out[i] != k+"="+telemetry.Redacted {
				t.Fatalf("RedactQuery(%q) changed %q into %q", q, in[i], out[i])
			}
		}
		if again := telemetry.RedactQuery(got); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
	})
}

func isSig(k string) bool {
	if d, err := url.QueryUnescape(k); err == nil {
		k = d
	}
	k = strings.ToLower(k)
	switch k {
	case "sig", "signature", "awsaccesskeyid", "access_token", "token", "api_key", "apikey", "key", "client_secret", "password":
		return true
	}
	return strings.HasPrefix(k, "x-amz-") || strings.HasPrefix(k, "x-goog-")
}

func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"http://u:p@h:1/a?sig=1", "https://h", "//u@h/?Signature=a#f", "http://[::1]:80/?a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		got := telemetry.RedactURL(u)
		if _, err := url.Parse(u.String()); err != nil {
			return // a URL that does not round-trip through String to begin with
		}
		r, err := url.Parse(got)
		if err != nil {
			t.Fatalf("RedactURL(%q) = %q does not parse: %v", s, got, err)
		}
		if (r.User != nil) != (u.User != nil) || r.User != nil && r.User.String() != "REDACTED:REDACTED" {
			t.Fatalf("RedactURL(%q) = %q: user %v", s, got, r.User)
		}
		if r.Host != u.Host || r.Path != u.Path {
			t.Fatalf("RedactURL(%q) = %q changed host or path", s, got)
		}
	})
}

type stageGauge struct{ open int64 }

func (s *stageGauge) Observe(yield func(string, int64)) { yield("http://a:80", s.open) }

func TestRegisterWeakGaugeLetsStageGo(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	points := func() int {
		g, ok := collect(t, reader)[telemetry.BreakerStateGauge].(metricdata.Gauge[int64])
		if !ok {
			return 0
		}
		return len(g.DataPoints)
	}
	func() {
		s := &stageGauge{open: 2}
		telemetry.RegisterWeakGauge(mp, telemetry.BreakerStateGauge, s)
		if n := points(); n != 1 {
			t.Fatalf("live stage: %d points, want 1", n)
		}
	}()
	// The stage is unreachable now; once collected it reports nothing and
	// its callback is unregistered. Bounded: a few GC cycles suffice.
	for i := 0; i < 20 && points() != 0; i++ {
		runtime.GC()
	}
	if n := points(); n != 0 {
		t.Errorf("dropped stage still observed: %d points", n)
	}
}
