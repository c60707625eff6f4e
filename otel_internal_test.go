package resilient

import (
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
)

// TestConfigSink: no MeterProvider means the default sink (nil); a
// configured one builds one sink, shared by every stage.
func TestConfigSink(t *testing.T) {
	c := defaultConfig()
	if c.sink() != nil {
		t.Error("sink without a MeterProvider is not the default")
	}
	WithMeterProvider(noop.NewMeterProvider())(&c)
	s := c.sink()
	if s == nil || c.sink() != s {
		t.Error("sink not built once from the configured MeterProvider")
	}
}
