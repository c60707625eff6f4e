package resilient

import (
	"context"
	"net/http"
	"time"

	"github.com/resilient-go/resilient/internal/adaptive"
	"github.com/resilient-go/resilient/internal/breaker"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/registry"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// WithBreaker sets the standard pipeline's circuit breaker policy.
func WithBreaker(p BreakerPolicy) Option {
	p.withDefaults() // panic at the option, not later
	return stageOption(StageBreaker, func(c *config) { c.breaker = p })
}

// CircuitBreaker returns a stage that keeps one circuit breaker per
// authority (or per BreakerPolicy.Key) and fails calls fast with a
// *CircuitOpenError while a breaker is open: an open circuit costs no
// network. It counts what the stage below returns, so placed inside Retry
// it counts every attempt. It panics on a negative field or a
// FailureRatio above 1.
//
// The stage is safe for concurrent use. It reports each breaker's state as
// the gauge resilient.client.breaker.state (0 closed, 1 half-open, 2 open)
// on the policy's MeterProvider.
func CircuitBreaker(p BreakerPolicy) Middleware {
	p = p.withDefaults()
	return func(next http.RoundTripper) http.RoundTripper {
		t := &breakerTransport{next: httpx.OrDefault(next), p: p}
		t.settings = breaker.Settings{
			ConsecutiveFailures: int64(p.ConsecutiveFailures),
			FailureRatio:        p.FailureRatio,
			MinRequests:         int64(p.MinRequests),
			Window:              p.Window,
			HalfOpenRequests:    int64(p.HalfOpenRequests),
			FirstOpen:           p.FirstOpenTimeout,
			MaxOpen:             p.OpenTimeout,
			Clock:               clock.Or(p.clock),
		}
		t.reg = registry.New(registry.Policy[compartmentKey, *keyedBreaker]{
			Max:  p.MaxKeys,
			New:  t.newBreaker,
			Idle: func(b *keyedBreaker) bool { return b.State() == breaker.Closed },
		})
		telemetry.RegisterWeakGauge(p.Telemetry.MeterProvider, telemetry.BreakerStateGauge, t)
		if p.Control != nil {
			p.Control.attach(t)
		}
		return t
	}
}

type breakerTransport struct {
	next     http.RoundTripper
	p        BreakerPolicy
	settings breaker.Settings
	reg      *registry.Map[compartmentKey, *keyedBreaker]
}

var _ http.RoundTripper = (*breakerTransport)(nil)

// keyedBreaker is one key's breaker, the name users see it by, and the
// host's normal latency, against which a call is slow.
type keyedBreaker struct {
	*breaker.Breaker
	key     string
	latency adaptive.Tracker
	fleet   fleetLink // used only with a Fleet
}

func (t *breakerTransport) newBreaker(k compartmentKey) *keyedBreaker {
	b := &keyedBreaker{Breaker: breaker.New(&t.settings, t.p.jitter()*0.1), key: k.String()}
	if c := t.p.Control; c != nil && c.isolatedKey(b.key) {
		b.Isolate() // isolated before it was made, or evicted while isolated
	}
	return b
}

func (t *breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := lookup(t.reg, t.p.Key, req)
	if t.p.Fleet != nil {
		t.fleetSync(b)
	}
	ticket, wait, ok := b.Allow()
	if ok && ticket.Probe() && t.p.Fleet != nil {
		wait, ok = t.fleetProbe(req, b, ticket)
	}
	if !ok {
		t.flush(req, b)
		return nil, t.reject(req, b, wait)
	}
	t.flush(req, b)
	req = httpx.GuardBody(req)
	clk := t.settings.Clock
	// Only a call whose caller can give up needs its duration (slow
	// calls), and such calls teach the host's latency; the rest, with a
	// context that never ends, save a clock read.
	var start time.Duration
	timed := req.Context().Done() != nil
	if timed {
		start = clk.Now()
	}
	reported := false
	defer func() {
		if !reported { // a panic below counts as a failure
			b.Done(ticket, breaker.Failure, clk.Now())
			t.flush(req, b)
		}
	}()
	resp, err := httpx.Settle(t.next.RoundTrip(req))
	end := clk.Now()
	var outcome breaker.Outcome
	took := time.Duration(-1) // not timed
	if timed {
		took = end - start
	}
	resp, outcome, err = t.outcome(req, b, resp, err, took, end)
	reported = true
	b.Done(ticket, outcome, end)
	if t.p.Fleet != nil {
		t.fleetDone(b, ticket, outcome)
	}
	t.flush(req, b)
	return resp, err
}

// outcome classifies a call that took took (negative: not timed, as its
// context could not end), for the breaker, and names a caller's mistake.
func (t *breakerTransport) outcome(req *http.Request, b *keyedBreaker, resp *http.Response, err error, took, now time.Duration) (*http.Response, breaker.Outcome, error) {
	if err != nil {
		if mistake, ok := asRequestError(req, err); ok {
			return nil, breaker.Ignored, mistake
		}
	} else {
		if took >= 0 {
			b.latency.Add(took, now)
		}
	}
	if !t.p.IsFailure(resp, err) {
		// A slow answer is an answer: a process short of CPU makes every
		// call look slow, and the adaptive limit deals with slow hosts.
		return resp, breaker.Success, err
	}
	if req.Context().Err() != nil {
		// The caller gave up, by cancel or deadline. Before the call was
		// slow for this host that says nothing about the host; after, the
		// host hung on it. Checked only for failures: it reads the clock.
		if t.p.DisableSlowCalls || took < t.slowAfter(b) {
			return resp, breaker.Ignored, err
		}
		telemetry.Emit(req.Context(), t.p.sink, telemetry.Event{Kind: telemetry.SlowCall, Authority: b.key, Delay: took})
	}
	return resp, breaker.Failure, err
}

// slowAfter is how long a call to b's host may take before it is slow.
func (t *breakerTransport) slowAfter(b *keyedBreaker) time.Duration {
	if t.p.SlowCallThreshold > 0 {
		return t.p.SlowCallThreshold
	}
	return max(MinSlowCall, 10*b.latency.Get())
}

func (t *breakerTransport) reject(req *http.Request, b *keyedBreaker, wait time.Duration) error {
	httpx.CloseRequestBody(req)
	e := &CircuitOpenError{Authority: b.key, Key: b.key, ProbeIn: wait}
	if b.Isolated() {
		e.Isolated, e.ProbeIn = true, 0
	}
	if t.p.Key != nil {
		e.Authority = httpx.AuthorityOf(req).String()
	}
	telemetry.Emit(req.Context(), t.p.sink, telemetry.Event{
		Kind:      telemetry.BreakerRejected,
		Authority: b.key,
		Delay:     wait,
		Err:       e,
	})
	return e
}

// flush delivers b's state changes, if any, with no lock held.
func (t *breakerTransport) flush(req *http.Request, b *keyedBreaker) {
	if b.Pending() {
		t.flushCtx(req.Context(), b)
	}
}

// flushCtx is flush for a change with no request behind it (an operator's).
func (t *breakerTransport) flushCtx(ctx context.Context, b *keyedBreaker) {
	b.Flush(func(c breaker.Change) {
		from, to := State(c.From), State(c.To)
		telemetry.Emit(ctx, t.p.sink, telemetry.Event{
			Kind:      telemetry.BreakerStateChange,
			Authority: b.key,
			From:      from.String(),
			To:        to.String(),
		})
		if f := t.p.OnStateChange; f != nil {
			f(b.key, from, to)
		}
	})
}

// Observe reports each breaker's state: 0 closed, 1 half-open, 2 open. It
// only reads: an open breaker past its timeout reads half-open, and no
// state change is delivered from inside a metrics collection.
func (t *breakerTransport) Observe(yield func(key string, state int64)) {
	t.reg.Range(func(_ compartmentKey, b *keyedBreaker) bool {
		yield(b.key, int64(b.State()))
		return true
	})
}

var _ telemetry.Gauge = (*breakerTransport)(nil)

// CloseIdleConnections forwards to the next transport.
func (t *breakerTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
