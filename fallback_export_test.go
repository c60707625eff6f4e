package resilient

import (
	"time"

	"github.com/resilient-go/resilient/internal/telemetry"
)

// FallbackWithSink is Fallback reporting to s, for tests.
func FallbackWithSink(f FallbackFunc, s telemetry.Sink) Middleware { return fallbackStage(f, s) }

// SetStaleCacheClock makes c read the time from now. Call it before use.
func SetStaleCacheClock(c *StaleCache, now func() time.Time) { c.now = now }

// HasCacheDirective exposes the Cache-Control parser to the fuzz target.
var HasCacheDirective = hasCacheDirective
