package resilient

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/resilient-go/resilient/internal/adaptive"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// An adaptive window lasts at least this long and holds this many answers
// (or a dropped call) before the limit moves: long enough to see the
// effect of the last move, short enough to halve an overload in a few
// hundred milliseconds.
const (
	minAdaptiveWindow  = 20 * time.Millisecond
	minAdaptiveSamples = 8
)

// sendLimited sends req under p's adaptive limit, waiting for a slot up to
// AdaptiveMaxWait, and teaches the limit what the call showed: its latency
// to the response headers, or that a deadline dropped it.
func (t *bulkheadTransport) sendLimited(req *http.Request, p *pool) (*http.Response, error) {
	clk := t.adaptive.Clock
	var waitStart time.Duration
	if !p.lim.TryAcquire() {
		waitStart = clk.Now()
		_, short := req.Context().Deadline()
		if a := p.lim.Acquire(req.Context(), t.p.AdaptiveMaxWait, short); a != adaptive.Admitted {
			return nil, t.rejectAdaptive(req, p, clk.Now()-waitStart, a == adaptive.Shed)
		}
	}
	released := false
	defer func() {
		if !released { // a panic below
			p.lim.ReleaseUntimed()
		}
	}()
	if !p.lim.Measure() {
		resp, err := httpx.Settle(t.next.RoundTrip(req))
		released = true
		p.lim.ReleaseUntimed()
		return resp, err
	}
	start := clk.Now()
	resp, err := httpx.Settle(t.next.RoundTrip(req))
	end := clk.Now()
	took := end - start
	released = true
	p.lim.Release(limitOutcome(req, p.lim, err, took), took, end)
	return resp, err
}

// limitOutcome says what a call tells the limit: an answer (any status:
// a fast 503 is no sign of load), a drop (a deadline ended it after it
// ran twice the host's normal latency), or nothing (a refused
// connection, a caller's mistake, an impatient caller).
func limitOutcome(req *http.Request, lim *adaptive.Limiter, err error, took time.Duration) adaptive.Outcome {
	if err == nil {
		return adaptive.Answered
	}
	ended := req.Context().Err() != nil || errors.Is(err, context.DeadlineExceeded)
	if base := lim.Baseline(); ended && base > 0 && took >= 2*base {
		return adaptive.Dropped
	}
	return adaptive.Unknown
}

func (t *bulkheadTransport) rejectAdaptive(req *http.Request, p *pool, waited time.Duration, shed bool) error {
	httpx.CloseRequestBody(req)
	e := t.full(req, p, waited, req.Context().Err())
	e.AdaptiveLimit = int(p.lim.Limit())
	e.Overloaded = shed
	telemetry.Emit(req.Context(), t.p.sink, telemetry.Event{
		Kind:      telemetry.AdaptiveRejected,
		Authority: p.key,
		Delay:     waited,
		Err:       e,
	})
	return e
}

// limitGauge is a bulkhead seen as the source of the adaptive-limit gauge.
type limitGauge bulkheadTransport

// Observe reports each pool's adaptive limit.
func (g *limitGauge) Observe(yield func(key string, limit int64)) {
	g.reg.Range(func(_ compartmentKey, p *pool) bool {
		if p.lim != nil && p.users.Load() >= 0 {
			yield(p.key, p.lim.Limit())
		}
		return true
	})
}

func atLeastOne(field string, v float64) error {
	if v != 0 && (v < 1 || math.IsNaN(v) || math.IsInf(v, 0)) {
		return &fieldError{field, "must be at least 1, got " + strconv.FormatFloat(v, 'g', -1, 64)}
	}
	return nil
}
