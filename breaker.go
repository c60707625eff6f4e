package resilient

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/registry"
	"github.com/resilient-go/resilient/internal/rolling"
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

// BreakerPolicy configures CircuitBreaker. The zero value is the default
// policy. A breaker trips open on ConsecutiveFailures failures in a row, or
// when at least MinRequests calls in the last Window have a FailureRatio of
// failures; after OpenTimeout it lets HalfOpenRequests probes through, and
// closes when they all succeed.
type BreakerPolicy struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row. Zero means 5.
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
	// OpenTimeout is how long an open breaker rejects calls before it lets
	// a probe through. Up to 10 % is added at random per breaker, so that
	// a fleet of clients does not probe in lockstep. Zero means 5 s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes a half-open breaker lets through;
	// all must succeed to close it. Zero means 1.
	HalfOpenRequests int
	// IsFailure classifies an outcome. Nil means transport errors (attempt
	// timeouts included), 5xx and 429 are failures; other responses are
	// successes. Whatever it says, a call whose own context ended (the
	// caller cancelled, or its deadline passed) is not counted at all.
	IsFailure func(*http.Response, error) bool
	// OnStateChange, if set, is called after a breaker changes state, with
	// no lock held: it may call back into the stage. Calls for one breaker
	// arrive in order.
	OnStateChange func(key string, from, to State)
	// Key picks the breaker a request counts against. Nil means one breaker
	// per authority (scheme://host:port), which is also the key passed to
	// OnStateChange.
	Key func(*http.Request) string
	// MaxKeys bounds the number of breakers kept; idle closed breakers are
	// forgotten first. Zero means 1024.
	MaxKeys int

	sink   telemetry.Sink // nil: span events on the request's span
	jitter func() float64 // in [0, 1); nil: math/rand/v2
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
	// when it is half-open and its probes are in flight.
	ProbeIn time.Duration
}

func (e *CircuitOpenError) Error() string {
	msg := "resilient: circuit open for " + e.Authority
	if e.Key != e.Authority {
		msg += " (breaker " + strconv.Quote(e.Key) + ")"
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
	return func(c *config) {
		c.breaker = p
		c.on[StageBreaker] = true
	}
}

// CircuitBreaker returns a stage that keeps one circuit breaker per
// authority (or per BreakerPolicy.Key) and fails calls fast with a
// *CircuitOpenError while a breaker is open: an open circuit costs no
// network. It counts what the stage below returns, so placed inside Retry
// it counts every attempt. It panics on a negative field or a
// FailureRatio above 1.
//
// The stage is safe for concurrent use. Its transport reports each
// breaker's state (0 closed, 1 half-open, 2 open) through an Observe method.
func CircuitBreaker(p BreakerPolicy) Middleware {
	p = p.withDefaults()
	return func(next http.RoundTripper) http.RoundTripper {
		t := &breakerTransport{next: httpx.OrDefault(next), p: p}
		t.reg = registry.New(registry.Policy[compartmentKey, *breaker]{
			Max:  p.MaxKeys,
			New:  t.newBreaker,
			Idle: func(b *breaker) bool { return State(b.state.Load()) == StateClosed },
		})
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
		notNegative("BreakerPolicy.HalfOpenRequests", p.HalfOpenRequests),
		notNegative("BreakerPolicy.MaxKeys", p.MaxKeys),
	); err != nil {
		return err
	}
	if p.FailureRatio < 0 || p.FailureRatio > 1 || math.IsNaN(p.FailureRatio) {
		return &fieldError{"BreakerPolicy.FailureRatio", "must be in [0, 1], got " + strconv.FormatFloat(p.FailureRatio, 'g', -1, 64)}
	}
	// gobreaker counts in uint32.
	if uint64(p.HalfOpenRequests) > math.MaxUint32 {
		return &fieldError{"BreakerPolicy.HalfOpenRequests", "is too large, got " + strconv.Itoa(p.HalfOpenRequests)}
	}
	if uint64(p.ConsecutiveFailures) > math.MaxUint32 {
		return &fieldError{"BreakerPolicy.ConsecutiveFailures", "is too large, got " + strconv.Itoa(p.ConsecutiveFailures)}
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
	def(&p.ConsecutiveFailures, 5)
	def(&p.MinRequests, 20)
	def(&p.HalfOpenRequests, 1)
	if p.FailureRatio == 0 {
		p.FailureRatio = 0.5
	}
	if p.Window == 0 {
		p.Window = 10 * time.Second
	}
	if p.OpenTimeout == 0 {
		p.OpenTimeout = 5 * time.Second
	}
	if p.IsFailure == nil {
		p.IsFailure = defaultIsFailure
	}
	if p.jitter == nil {
		p.jitter = rand.Float64
	}
	return p
}

func defaultIsFailure(resp *http.Response, err error) bool {
	return err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// Outcomes reported to gobreaker: nil is a success.
var (
	errFailure  = errors.New("failure")
	errExcluded = errors.New("not counted")
)

type breakerTransport struct {
	next http.RoundTripper
	p    BreakerPolicy
	reg  *registry.Map[compartmentKey, *breaker]
}

var _ http.RoundTripper = (*breakerTransport)(nil)

// breaker is one key's gobreaker plus what the hot path reads without
// taking gobreaker's lock.
type breaker struct {
	t       *breakerTransport
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	key     string
	timeout time.Duration // OpenTimeout with this breaker's jitter

	successes rolling.Counter // successes while closed, over the last Window
	dirty     atomic.Bool     // a failure was reported since the last success was

	// Written by onChange, under gobreaker's lock.
	gen       atomic.Uint64 // counts state changes
	state     atomic.Int32  // the State as of the last change
	openUntil atomic.Int64  // a deadline.Now offset; set before state becomes open
	pending   atomic.Bool   // queue may be non-empty

	mu         sync.Mutex
	queue      []stateChange // guarded by mu
	delivering bool          // guarded by mu
}

type stateChange struct{ from, to State }

func (t *breakerTransport) newBreaker(k compartmentKey) *breaker {
	b := &breaker{t: t, key: k.String()}
	b.successes.Period = int64(t.p.Window / rolling.Buckets)
	jitter := time.Duration(t.p.jitter() * 0.1 * float64(t.p.OpenTimeout))
	b.timeout = clock.Add(t.p.OpenTimeout, jitter)
	minReq := uint64(t.p.MinRequests)
	consec := uint32(t.p.ConsecutiveFailures)
	ratio := t.p.FailureRatio
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         b.key,
		MaxRequests:  uint32(t.p.HalfOpenRequests),
		Interval:     t.p.Window,
		BucketPeriod: t.p.Window / rolling.Buckets,
		Timeout:      b.timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= consec {
				return true
			}
			n := uint64(c.TotalFailures) + uint64(b.successes.Sum(t.since()))
			return n >= minReq && float64(c.TotalFailures) >= ratio*float64(n)
		},
		OnStateChange: b.onChange,
		IsSuccessful:  func(err error) bool { return err == nil },
		IsExcluded:    func(err error) bool { return err == errExcluded },
	})
	return b
}

// since reads the clock shared with the other stages (deadline.Now).
func (t *breakerTransport) since() int64 { return int64(clock.Now()) }

func (t *breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := lookup(t.reg, t.p.Key, req)
	gen := b.gen.Load()
	switch State(b.state.Load()) {
	case StateClosed:
		return t.sendClosed(req, b, gen)
	case StateOpen:
		// An open breaker answers without gobreaker's lock: no convoy
		// when a dead host is called from many goroutines.
		if wait := b.openUntil.Load() - t.since(); wait > 0 {
			return nil, t.reject(req, b, time.Duration(wait))
		}
	}
	done, err := b.cb.Allow()
	if b.pending.Load() {
		b.flush(req.Context())
	}
	if err != nil {
		var wait time.Duration
		if errors.Is(err, gobreaker.ErrOpenState) {
			wait = max(time.Duration(b.openUntil.Load()-t.since()), 0)
		}
		return nil, t.reject(req, b, wait)
	}
	reported := false
	defer func() {
		if !reported { // a panic below counts as a failure
			done(errFailure)
		}
	}()
	resp, err := t.next.RoundTrip(req)
	resp, err, outcome := t.outcome(req, resp, err)
	reported = true
	done(outcome)
	if b.pending.Load() {
		b.flush(req.Context())
	}
	return resp, err
}

// sendClosed sends through a closed breaker without taking gobreaker's
// lock unless there is news: successes are counted in b.successes, and
// gobreaker hears of a failure, and of the first success after one (which
// resets its consecutive-failure count). Its state machine, the failure
// window and the probes stay gobreaker's.
func (t *breakerTransport) sendClosed(req *http.Request, b *breaker, gen uint64) (*http.Response, error) {
	reported := false
	defer func() {
		if !reported {
			b.report(req.Context(), gen, errFailure)
		}
	}()
	resp, err := t.next.RoundTrip(req)
	resp, err, outcome := t.outcome(req, resp, err)
	reported = true
	switch outcome {
	case nil:
		b.successes.Add(t.since())
		if b.dirty.Load() && b.dirty.Swap(false) {
			b.report(req.Context(), gen, nil)
		}
	case errFailure:
		b.dirty.Store(true)
		b.report(req.Context(), gen, errFailure)
	}
	return resp, err
}

// report tells gobreaker the outcome of a call sent while the breaker was
// closed in generation gen. An outcome from an older state is dropped, so
// a late failure cannot pose as a half-open probe's.
func (b *breaker) report(ctx context.Context, gen uint64, outcome error) {
	if b.gen.Load() != gen {
		return
	}
	done, err := b.cb.Allow()
	if err == nil {
		if b.gen.Load() != gen {
			outcome = errExcluded // gives the probe slot back
		}
		done(outcome)
	}
	if b.pending.Load() {
		b.flush(ctx)
	}
}

// outcome classifies a call for the breaker: nil for a success.
func (t *breakerTransport) outcome(req *http.Request, resp *http.Response, err error) (*http.Response, error, error) {
	if err != nil && resp != nil {
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		resp = nil
	}
	if !t.p.IsFailure(resp, err) {
		return resp, err, nil
	}
	if req.Context().Err() != nil {
		// The caller gave up, by cancel or deadline: that says nothing
		// about the host. Checked only for failures: it reads the clock.
		return resp, err, errExcluded
	}
	return resp, err, errFailure
}

func (t *breakerTransport) reject(req *http.Request, b *breaker, wait time.Duration) error {
	httpx.CloseRequestBody(req)
	e := &CircuitOpenError{Authority: b.key, Key: b.key, ProbeIn: wait}
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

// onChange is gobreaker's OnStateChange. gobreaker holds its lock here, so
// it only records the change; flush delivers it once the lock is released.
func (b *breaker) onChange(_ string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		b.openUntil.Store(int64(clock.Add(clock.Now(), b.timeout)))
	}
	if to == gobreaker.StateClosed {
		b.successes.Reset()
	}
	b.gen.Add(1)
	b.state.Store(int32(to))
	b.mu.Lock()
	b.queue = append(b.queue, stateChange{State(from), State(to)})
	b.pending.Store(true)
	b.mu.Unlock()
}

// flush delivers queued state changes, in order, with no lock held. One
// goroutine delivers at a time; a callback that re-enters the stage queues
// its own changes and returns, and the deliverer picks them up after it.
func (b *breaker) flush(ctx context.Context) {
	for {
		b.mu.Lock()
		if b.delivering || len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		q := b.queue
		b.queue = nil
		b.pending.Store(false)
		b.delivering = true
		b.mu.Unlock()
		b.deliver(ctx, q)
	}
}

func (b *breaker) deliver(ctx context.Context, q []stateChange) {
	defer func() {
		b.mu.Lock()
		b.delivering = false
		b.mu.Unlock()
	}()
	for _, c := range q {
		telemetry.Emit(ctx, b.t.p.sink, telemetry.Event{
			Kind:      telemetry.BreakerStateChange,
			Authority: b.key,
			From:      c.from.String(),
			To:        c.to.String(),
		})
		if f := b.t.p.OnStateChange; f != nil {
			f(b.key, c.from, c.to)
		}
	}
}

// Observe reports each breaker's state: 0 closed, 1 half-open, 2 open. It
// satisfies telemetry.Gauge.
func (t *breakerTransport) Observe(yield func(key string, state int64)) {
	t.reg.Range(func(_ compartmentKey, b *breaker) bool {
		st := b.cb.State() // moves an expired open breaker to half-open
		if b.pending.Load() {
			b.flush(context.Background())
		}
		yield(b.key, int64(st))
		return true
	})
}

var _ telemetry.Gauge = (*breakerTransport)(nil)

// CloseIdleConnections forwards to the next transport.
func (t *breakerTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
