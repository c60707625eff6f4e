package resilient

import (
	"time"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// Hooks for the external tests of the Retry stage.

// SetRetryClock replaces the clock the stage reads and sleeps with.
func SetRetryClock(p *RetryPolicy, c clock.Clock) { p.clock = c }

// SetRetrySink sends the stage's events to s.
func SetRetrySink(p *RetryPolicy, s telemetry.Sink) { p.sink = s }

// ParseRetryAfter exposes parseRetryAfter to the fuzz target.
var ParseRetryAfter = parseRetryAfter

// SetBudgetClock drives a budget's clock: now is the time since an
// arbitrary origin.
func SetBudgetClock(b *RetryBudget, now func() time.Duration) { b.now = now }
