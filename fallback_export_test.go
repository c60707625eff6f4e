package resilient

import (
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// FallbackWithSink is Fallback reporting to s, for tests.
func FallbackWithSink(f FallbackFunc, s telemetry.Sink) Middleware { return fallbackStage(f, s) }

// SetStaleCacheClock makes c read the time from clk. Call it before use.
func SetStaleCacheClock(c *StaleCache, clk clock.Clock) { c.clk = clk }
