package resilient

import (
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
)

// TestTelemetrySink: no MeterProvider means the default sink (nil); a
// configured one gives the stages a sink on it.
func TestTelemetrySink(t *testing.T) {
	c := defaultConfig()
	if c.telemetry().sink() != nil {
		t.Error("sink without a MeterProvider is not the default")
	}
	WithMeterProvider(noop.NewMeterProvider())(&c)
	if c.telemetry().sink() == nil {
		t.Error("no sink built from the configured MeterProvider")
	}
}
