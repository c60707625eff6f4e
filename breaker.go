package resilient

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/resilient-go/resilient/internal/adaptive"
	"github.com/resilient-go/resilient/internal/breaker"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/registry"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// State is a circuit breaker's state. Its numeric value (0, 1, 2) is what
// the breaker state gauge reports.
type State int8

// The states of a circuit breaker.
const (
	StateClosed   State = iota // calls go through and are counted
	StateHalfOpen              // a few probe calls go through; the rest are rejected
	StateOpen                  // calls are rejected without being sent
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Defaults of a BreakerPolicy.
const (
	DefaultConsecutiveFailures = 5
	DefaultFailureRatio        = 0.5
	DefaultMinRequests         = 20
	DefaultBreakerWindow       = 10 * time.Second
	DefaultOpenTimeout         = 5 * time.Second
	DefaultFirstOpenTimeout    = time.Second
	// MinSlowCall is the least an adaptive SlowCallThreshold is: a host's
	// normal latency times 10 can be microseconds, and scheduling noise
	// is not a slow dependency.
	MinSlowCall             = 250 * time.Millisecond
	DefaultHalfOpenRequests = 1
	DefaultMaxKeys          = registry.DefaultMax
)

// BreakerPolicy configures CircuitBreaker. The zero value is the default
// policy. A breaker trips open on ConsecutiveFailures failures in a row, or
// when at least MinRequests calls in the last Window have a FailureRatio of
// failures; after OpenTimeout it lets HalfOpenRequests probes through, and
// closes when they all succeed.
type BreakerPolicy struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row, however far apart in time: only a success ends the run. Zero
	// means 5.
	ConsecutiveFailures int
	// FailureRatio trips the breaker when this share of the calls in the
	// Window failed (with at least MinRequests calls). Zero means 0.5; it
	// must not be above 1.
	FailureRatio float64
	// MinRequests is how many calls the Window needs before FailureRatio
	// applies. Zero means 20.
	MinRequests int
	// Window is the rolling window FailureRatio is measured over, in ten
	// buckets. Zero means 10 s.
	Window time.Duration
	// OpenTimeout is the longest an open breaker rejects calls before it
	// lets a probe through. A trip waits FirstOpenTimeout; each failed
	// probe doubles the wait, up to OpenTimeout; closing starts over. Up
	// to 10 % is added at random per breaker, so that a fleet of clients
	// does not probe in lockstep. Zero means 5 s.
	OpenTimeout time.Duration
	// FirstOpenTimeout is the wait after a trip from closed, so that a
	// short outage costs a short wait. Zero means the lesser of 1 s and
	// OpenTimeout; set it to OpenTimeout for a fixed wait.
	FirstOpenTimeout time.Duration
	// SlowCallThreshold makes a call its caller gave up on (a cancel, or
	// the caller's own deadline) a failure once it has run this long: the
	// host hung on it, and a dependency that hangs is as dead as one that
	// fails, though no timeout of ours fired. Zero means adaptive: 10 times
	// the host's normal latency (the median of its answered calls, learnt
	// as it goes), and at least 250 ms. A caller that gives up before a
	// call was slow for its host is not counted, so one impatient caller
	// cannot open the breaker for everyone. A slow answer is not a
	// failure: a process short of CPU makes every call look slow, and the
	// Bulkhead's adaptive limit is what answers a slow host.
	SlowCallThreshold time.Duration
	// DisableSlowCalls never counts a call its caller gave up on.
	DisableSlowCalls bool
	// HalfOpenRequests is how many probes a half-open breaker lets through;
	// all must succeed to close it. Zero means 1.
	HalfOpenRequests int
	// IsFailure classifies an outcome. Nil means transport errors (attempt
	// timeouts included), 5xx and 429 are failures; other responses are
	// successes. Whatever it says, two outcomes are not counted at all: a
	// call whose own context ended (the caller cancelled, or its deadline
	// passed), and a request net/http refused before the network (a
	// *RequestError: the caller's mistake, not the dependency's).
	IsFailure func(*http.Response, error) bool
	// OnStateChange, if set, is called after a breaker changes state, with
	// no lock held (ours or OpenTelemetry's): it may call back into the
	// stage. Calls for one breaker arrive in order.
	OnStateChange func(key string, from, to State)
	// Key picks the breaker a request counts against. Nil means one breaker
	// per authority (scheme://host:port, host compared case-insensitively),
	// which is also the key passed to OnStateChange.
	Key func(*http.Request) string
	// MaxKeys bounds the number of breakers kept; idle closed breakers are
	// forgotten first. Zero means 1024.
	MaxKeys int
	// Fleet, if set, shares breakers with the other processes of a fleet
	// (see Fleet): a key the fleet has found dead is held open here too,
	// and one process in the fleet probes it. Nil means this process
	// alone.
	Fleet Fleet
	// Telemetry is where the stage reports rejections and state changes,
	// and its state gauge. The zero value means the global providers.
	Telemetry Telemetry
	// Control, if set, lets an operator hold a key's breaker open, close
	// it, and list every breaker (see BreakerControl). Nil means none.
	Control *BreakerControl

	sink   telemetry.Sink // nil: Telemetry's
	jitter func() float64 // in [0, 1); nil: math/rand/v2
	clock  clock.Clock    // nil: clock.Real
}

// CircuitOpenError is the error of a call an open (or half-open and busy)
// breaker rejected without sending it. It matches
// errors.Is(err, ErrCircuitOpen).
type CircuitOpenError struct {
	// Authority is the rejected request's scheme://host:port.
	Authority string
	// Key is the breaker's key: Authority, unless BreakerPolicy.Key is set.
	Key string
	// ProbeIn is the time until the breaker lets a probe through; zero
	// when it is half-open and its probes are in flight, or isolated.
	ProbeIn time.Duration
	// Isolated is set when a BreakerControl holds the breaker open: no
	// probe goes until its Reset.
	Isolated bool
}

func (e *CircuitOpenError) Error() string {
	msg := "resilient: circuit open for " + e.Authority
	if e.Key != e.Authority {
		msg += " (breaker " + strconv.Quote(e.Key) + ")"
	}
	if e.Isolated {
		return msg + ", isolated by an operator"
	}
	if e.ProbeIn > 0 {
		return msg + ", next probe in " + e.ProbeIn.Round(time.Millisecond).String()
	}
	return msg + ", probe in flight"
}

// Is matches ErrCircuitOpen.
func (e *CircuitOpenError) Is(target error) bool { return target == ErrCircuitOpen }

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

// check returns a *fieldError for the first field out of range.
func (p BreakerPolicy) check() error {
	if err := firstError(
		notNegative("BreakerPolicy.ConsecutiveFailures", p.ConsecutiveFailures),
		notNegative("BreakerPolicy.MinRequests", p.MinRequests),
		notNegative("BreakerPolicy.Window", p.Window),
		notNegative("BreakerPolicy.OpenTimeout", p.OpenTimeout),
		notNegative("BreakerPolicy.FirstOpenTimeout", p.FirstOpenTimeout),
		notNegative("BreakerPolicy.SlowCallThreshold", p.SlowCallThreshold),
		notNegative("BreakerPolicy.HalfOpenRequests", p.HalfOpenRequests),
		notNegative("BreakerPolicy.MaxKeys", p.MaxKeys),
	); err != nil {
		return err
	}
	if p.FailureRatio < 0 || p.FailureRatio > 1 || math.IsNaN(p.FailureRatio) {
		return &fieldError{"BreakerPolicy.FailureRatio", "must be in [0, 1], got " + strconv.FormatFloat(p.FailureRatio, 'g', -1, 64)}
	}
	return nil
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	mustValid(p.check())
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.ConsecutiveFailures, DefaultConsecutiveFailures)
	def(&p.MinRequests, DefaultMinRequests)
	def(&p.HalfOpenRequests, DefaultHalfOpenRequests)
	if p.FailureRatio == 0 {
		p.FailureRatio = DefaultFailureRatio
	}
	p.Window = orDefault(p.Window, DefaultBreakerWindow)
	p.OpenTimeout = orDefault(p.OpenTimeout, DefaultOpenTimeout)
	p.FirstOpenTimeout = min(orDefault(p.FirstOpenTimeout, DefaultFirstOpenTimeout), p.OpenTimeout)
	if p.IsFailure == nil {
		p.IsFailure = defaultIsFailure
	}
	if p.jitter == nil {
		p.jitter = rand.Float64
	}
	if p.sink == nil {
		p.sink = p.Telemetry.sink()
	}
	return p
}

func defaultIsFailure(resp *http.Response, err error) bool {
	return err != nil || httpx.FailureStatus(resp.StatusCode)
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
