package resilient

import (
	"time"

	"github.com/resilient-go/resilient/internal/telemetry"
)

// Hooks for the external tests of the Hedge stage.

// SetHedgeSink sends the stage's events to s.
func SetHedgeSink(p *HedgePolicy, s telemetry.Sink) { p.sink = s }

// HedgeTimer is what a test's timer factory returns: Stop reports whether
// it stopped the timer before it fired.
type HedgeTimer = stopper

// SetHedgeAfterFunc replaces time.AfterFunc, which the stage arms hedges
// with; f must run in its own goroutine when the timer fires.
func SetHedgeAfterFunc(p *HedgePolicy, af func(d time.Duration, f func()) HedgeTimer) {
	p.afterFunc = af
}
