package resilient

import (
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// Test hooks for the unexported policy fields.

func SetBreakerSink(p *BreakerPolicy, s telemetry.Sink)   { p.sink = s }
func SetBreakerJitter(p *BreakerPolicy, f func() float64) { p.jitter = f }
func SetBulkheadSink(p *BulkheadPolicy, s telemetry.Sink) { p.sink = s }

// BulkheadWaiting returns how many calls wait for a slot in rt, a
// transport made by Bulkhead.
func BulkheadWaiting(rt any) int64 {
	var n int64
	rt.(*bulkheadTransport).reg.Range(func(_ compartmentKey, p *pool) bool {
		n += p.waiters.Load()
		return true
	})
	return n
}

// SetBreakerClock drives the breaker stage's time.
func SetBreakerClock(p *BreakerPolicy, c clock.Clock) { p.clock = c }

// SetBulkheadClock drives the bulkhead stage's time.
func SetBulkheadClock(p *BulkheadPolicy, c clock.Clock) { p.clock = c }
