package resilient_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/resilienttest"
)

// TestBreakerConsecutiveFailuresHoweverFarApart: "3 in a row" means in a
// row, not within a window. On the old code the rolling window forgot the
// first two failures and the 4th call was sent.
func TestBreakerConsecutiveFailuresHoweverFarApart(t *testing.T) {
	clk := clock.NewFake(0)
	p := noJitter(resilient.BreakerPolicy{ConsecutiveFailures: 3, Window: 100 * time.Millisecond})
	resilient.SetBreakerClock(&p, clk)
	tr := resilienttest.NewTransport(resilienttest.Status(503))
	rt := resilient.Chain(tr, resilient.CircuitBreaker(p))
	for i := range 3 {
		resp, err := rt.RoundTrip(mustGet(t, "http://api.test/"))
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		resp.Body.Close()
		clk.Advance(200 * time.Millisecond) // twice the window between failures
	}
	_, err := rt.RoundTrip(mustGet(t, "http://api.test/"))
	if !errors.Is(err, resilient.ErrCircuitOpen) {
		t.Fatalf("4th call after 3 failures 200ms apart: %v; want ErrCircuitOpen", err)
	}
	if tr.Count() != 3 {
		t.Errorf("host saw %d requests, want 3", tr.Count())
	}
}

// TestBreakerOpenTimeoutOnFakeTime: the open timeout runs on the stage's
// clock, so the probe goes exactly when the fake time says.
func TestBreakerOpenTimeoutOnFakeTime(t *testing.T) {
	clk := clock.NewFake(0)
	p := noJitter(resilient.BreakerPolicy{ConsecutiveFailures: 1, OpenTimeout: time.Minute, FirstOpenTimeout: time.Minute})
	resilient.SetBreakerClock(&p, clk)
	tr := resilienttest.NewTransport(resilienttest.FailFirst(1, 500))
	rt := resilient.Chain(tr, resilient.CircuitBreaker(p))
	if resp, err := rt.RoundTrip(mustGet(t, "http://api.test/")); err == nil {
		resp.Body.Close()
	}
	clk.Advance(time.Minute - time.Nanosecond)
	var open *resilient.CircuitOpenError
	if _, err := rt.RoundTrip(mustGet(t, "http://api.test/")); !errors.As(err, &open) || open.ProbeIn != time.Nanosecond {
		t.Fatalf("1ns before the timeout: %v; want open with ProbeIn 1ns", err)
	}
	clk.Advance(time.Nanosecond)
	resp, err := rt.RoundTrip(mustGet(t, "http://api.test/"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("probe at the timeout: %v, %v; want the 200", resp, err)
	}
	resp.Body.Close()
}

// TestBreakerCallbackCreatesInstrumentDuringCollect: the state gauge only
// reads. On the old code, Collect moved an expired open breaker to
// half-open and ran OnStateChange inside the SDK's collection, so a
// callback that creates an instrument on the same MeterProvider
// deadlocked.
func TestBreakerCallbackCreatesInstrumentDuringCollect(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	clk := clock.NewFake(0)
	var changes atomic.Int64
	p := noJitter(resilient.BreakerPolicy{
		ConsecutiveFailures: 1,
		Telemetry:           resilient.Telemetry{MeterProvider: mp},
		OnStateChange: func(key string, from, to resilient.State) {
			changes.Add(1)
			if _, err := mp.Meter("callback").Int64Counter("resilient.test.changes"); err != nil {
				t.Errorf("creating an instrument in OnStateChange: %v", err)
			}
		},
	})
	resilient.SetBreakerClock(&p, clk)
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.FailFirst(1, 500)), resilient.CircuitBreaker(p))
	if resp, err := rt.RoundTrip(mustGet(t, "http://api.test/")); err == nil {
		resp.Body.Close()
	}
	clk.Advance(time.Hour) // past the open timeout: a probe may go

	collected := make(chan int64, 1)
	go func() {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Errorf("Collect: %v", err)
		}
		collected <- gaugeValue(rm, "resilient.client.breaker.state")
	}()
	select {
	case v := <-collected:
		if v != int64(resilient.StateHalfOpen) {
			t.Errorf("state gauge = %d past the open timeout, want %d (half-open)", v, resilient.StateHalfOpen)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Collect deadlocked")
	}
	if n := changes.Load(); n != 1 {
		t.Fatalf("%d state changes delivered, want 1 (closed to open): Collect must not move the breaker", n)
	}
	resp, err := rt.RoundTrip(mustGet(t, "http://api.test/"))
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	resp.Body.Close()
	if n := changes.Load(); n != 3 {
		t.Errorf("%d state changes after the probe, want 3 (open, half-open, closed)", n)
	}
}

// gaugeValue is the single int64 point of gauge name in rm, or -1.
func gaugeValue(rm metricdata.ResourceMetrics, name string) int64 {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name && len(g.DataPoints) == 1 {
				return g.DataPoints[0].Value
			}
		}
	}
	return -1
}
