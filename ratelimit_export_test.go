package resilient

import (
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// Hooks for the external tests of the RateLimit stage.

// SetRateLimitClock runs the stage on c instead of the real clock.
func SetRateLimitClock(p *RateLimitPolicy, c clock.Clock) { p.clock = c }

// SetRateLimitSink sends the stage's events to s.
func SetRateLimitSink(p *RateLimitPolicy, s telemetry.Sink) { p.sink = s }
