// resilient configured for every row: the standard pipeline with each
// value spelled out, changed as a row asks.

package bench

import (
	"net/http"
	"time"

	"github.com/resilient-go/resilient"
)

// newResilient is the standard pipeline with every value spelled out (they
// are its defaults), changed as c asks.
func newResilient(base http.RoundTripper, c cfg) http.RoundTripper {
	breaker := resilient.BreakerPolicy{ConsecutiveFailures: breakerTrip, OpenTimeout: breakerOpen}
	if c.breakerOnly {
		return resilient.Chain(base, resilient.CircuitBreaker(breaker))
	}
	retry := resilient.RetryPolicy{MaxAttempts: maxAttempts, InitialDelay: initialDelay, MaxDelay: maxDelay}
	if c.fastBackoff {
		retry.InitialDelay, retry.MaxDelay = time.Nanosecond, time.Nanosecond
	}
	if c.noBudget {
		noRetryBudget(&retry)
	}
	opts := []resilient.Option{
		resilient.WithTotalTimeout(totalTimeout),
		resilient.WithAttemptTimeout(attemptTimeout),
		resilient.WithRetry(retry),
		resilient.WithBulkhead(resilient.BulkheadPolicy{MaxConcurrent: bulkheadSize}),
		resilient.WithBreaker(breaker),
	}
	if c.noBreaker {
		opts = append(opts, resilient.Without(resilient.StageBreaker))
	}
	if c.hedge > 0 {
		opts = append(opts, resilient.WithHedge(resilient.HedgePolicy{Delay: c.hedge, MaxHedges: 1}))
	}
	return resilient.NewTransport(base, opts...)
}

// noRetryBudget lets every failed call make all its attempts.
func noRetryBudget(p *resilient.RetryPolicy) {
	p.Budget = &resilient.RetryBudget{Unlimited: true}
}
