package resilient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/resilient-go/resilient/internal/bounded"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/deadline"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// Defaults of a RetryPolicy.
const (
	DefaultMaxAttempts   = 3
	DefaultInitialDelay  = 100 * time.Millisecond
	DefaultMaxDelay      = 5 * time.Second
	DefaultMaxRetryAfter = 30 * time.Second
)

// RetryPolicy configures the Retry stage. The zero value is the default:
// three attempts, full-jitter backoff from 100 ms up to 5 s, Retry-After
// honoured up to 30 s, and a retry budget shared by the stage's calls.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included. Zero means 3;
	// 1 means no retry.
	MaxAttempts int
	// InitialDelay caps the first backoff delay: the n-th retry waits a
	// random time in [0, min(MaxDelay, InitialDelay·2^(n-1))) ("full
	// jitter"). Zero means 100 ms. Ignored when BackOff is set.
	InitialDelay time.Duration
	// MaxDelay caps every backoff delay. Zero means 5 s. Ignored when
	// BackOff is set.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After (on a 429 or 503) the stage
	// waits for; a longer one ends the call with that response at once.
	// Zero means 30 s.
	MaxRetryAfter time.Duration
	// ShouldRetry decides whether an outcome is worth another attempt; it
	// may read the response's headers but must not touch its body. Nil
	// means DefaultShouldRetry. Whatever it says, the stage never retries
	// a request it cannot replay, a call whose context has ended, a TLS
	// certificate error, ErrCircuitOpen or ErrBulkheadFull.
	ShouldRetry func(req *http.Request, resp *http.Response, err error) bool
	// BackOff makes the delay sequence for one call; it is called once
	// per call that retries, since a BackOff is not safe to share. A
	// delay of backoff.Stop ends the retries. Nil means full jitter from
	// InitialDelay and MaxDelay.
	BackOff func() backoff.BackOff
	// Budget caps retries across calls (see RetryBudget). Nil means a
	// default budget shared by the calls through this stage; share one
	// budget between stages to cap them together, or pass
	// &RetryBudget{Unlimited: true} to switch budgeting off.
	Budget *RetryBudget
	// OnRetry, if set, is called before each wait with the request, the
	// number of the attempt that failed (1 = the first), the delay before
	// the next one, and that attempt's response or error. The response
	// body is discarded after OnRetry returns. It must be safe for
	// concurrent use.
	OnRetry func(req *http.Request, attempt int, delay time.Duration, resp *http.Response, err error)
	// Telemetry is where the stage reports retries and budget refusals.
	// The zero value means the global providers.
	Telemetry Telemetry

	sink  telemetry.Sink // nil: Telemetry's
	clock clock.Clock    // nil: clock.Real
}

// validate panics on a field out of range, naming it.
func (p *RetryPolicy) validate() { mustValid(p.check()) }

// check returns a *fieldError for the first field out of range.
func (p *RetryPolicy) check() error {
	if p.MaxAttempts < 0 {
		return &fieldError{"RetryPolicy.MaxAttempts", "must not be negative, got " + strconv.Itoa(p.MaxAttempts)}
	}
	for _, f := range [...]struct {
		name string
		d    time.Duration
	}{{"InitialDelay", p.InitialDelay}, {"MaxDelay", p.MaxDelay}, {"MaxRetryAfter", p.MaxRetryAfter}} {
		if f.d < 0 {
			return &fieldError{"RetryPolicy." + f.name, "must not be negative, got " + f.d.String()}
		}
	}
	if p.BackOff == nil && p.initialDelay() > p.maxDelay() {
		return &fieldError{"RetryPolicy.InitialDelay", "(" + p.initialDelay().String() +
			") is longer than MaxDelay (" + p.maxDelay().String() + ")"}
	}
	return p.Budget.check()
}

func (p *RetryPolicy) initialDelay() time.Duration {
	return orDefault(p.InitialDelay, DefaultInitialDelay)
}
func (p *RetryPolicy) maxDelay() time.Duration { return orDefault(p.MaxDelay, DefaultMaxDelay) }

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Retry re-sends a call whose outcome is transient: a transport error, an
// attempt timeout, or a 408, 429, 500, 502, 503 or 504 (DefaultShouldRetry).
// It waits between attempts as the policy's backoff says, or as a 429's or
// 503's Retry-After (or a RateLimitedError's RetryAfter) says, and never
// past the call's deadline: a wait that
// would end after it is not started, and the last outcome is returned.
//
// Only requests net/http deems replayable are re-sent (GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE, or any method with an Idempotency-Key or
// X-Idempotency-Key header), and only if their body can be rewound with
// GetBody; others are sent once. A discarded response is drained (up to
// 64 KiB) and closed so its connection is reused. When attempts, budget or
// time run out the caller gets the last response, body unread, or the
// last error.
//
// The first attempt sends the caller's request as it is; later attempts
// carry the attempt number in their context for the Tracing stage. Retry
// panics on a negative MaxAttempts or delay.
func Retry(p RetryPolicy) Middleware { return retryStage(p, 0) }

// retryStage is Retry under a total timeout of total (0: none), for the
// standard pipeline when an attempt timeout no longer than total sits
// below. Every attempt is then bounded by that attempt timeout, so the
// first one needs no total context of its own: the total deadline is
// counted from the start of the call and put in place only when a retry
// is taken. A call that succeeds first time saves a context and a request
// copy. The outcome is the same as Timeout(total) above Retry(p).
func retryStage(p RetryPolicy, total time.Duration) Middleware {
	p.validate()
	return func(next http.RoundTripper) http.RoundTripper {
		next = httpx.OrDefault(next)
		if p.MaxAttempts == 1 {
			if total > 0 {
				return timeoutStage(total, callTotal)(next)
			}
			return next
		}
		t := &retryTransport{next: next, p: p, maxAttempts: p.MaxAttempts, total: total}
		if t.maxAttempts == 0 {
			t.maxAttempts = DefaultMaxAttempts
		}
		t.p.MaxRetryAfter = orDefault(p.MaxRetryAfter, DefaultMaxRetryAfter)
		if t.p.ShouldRetry == nil {
			t.p.ShouldRetry = DefaultShouldRetry
		}
		if t.p.Budget == nil {
			t.p.Budget = newBudget(p.clock)
		}
		t.p.Budget.use()
		if t.p.sink == nil {
			t.p.sink = p.Telemetry.sink()
		}
		t.p.clock = clock.Or(p.clock)
		return t
	}
}

// WithRetry sets the retry policy of the standard pipeline and switches
// the stage on. It panics on a bad policy, as Retry does.
func WithRetry(p RetryPolicy) Option {
	p.validate()
	return stageOption(StageRetry, func(c *config) { c.retry = p }, StageHedge)
}

type retryTransport struct {
	next        http.RoundTripper
	p           RetryPolicy // defaults filled in
	maxAttempts int
	total       time.Duration // > 0: the call's total timeout, set up lazily
}

var _ http.RoundTripper = (*retryTransport)(nil)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if p := callPolicyOf(req.Context()); p != nil {
		return t.roundTripCall(req, p)
	}
	return t.roundTrip(req)
}

func (t *retryTransport) roundTrip(req *http.Request) (*http.Response, error) {
	start := t.p.clock.Now() // for the budget and the total deadline alike
	req = t.p.Budget.onCallOnce(req, start)
	req = httpx.GuardBody(req)
	o := t.send(req, req)
	if !o.again {
		return o.resp, o.err
	}
	if t.total > 0 {
		return t.retryWithin(req, clock.Add(start, t.total), o)
	}
	return t.retry(req, o)
}

// retryWithin is retry under the total deadline end, which from here on
// bounds the waits, the later attempts and the last body read, as a
// Timeout stage above would have.
func (t *retryTransport) retryWithin(req *http.Request, end time.Duration, o outcome) (*http.Response, error) {
	if pd, ok := deadline.DeadlineOf(req.Context(), t.p.clock); ok && end >= pd {
		return t.retry(req, o) // the caller's deadline is sooner
	}
	return bounded.Run(req, end, t.total, t.p.clock, callTotal, func(r *http.Request) (*http.Response, error) {
		return t.retry(r, o)
	})
}

// outcome is one attempt's result and what may follow it.
type outcome struct {
	resp  *http.Response
	err   error
	class httpx.Class // of a failure worth another attempt
	again bool        // worth another attempt, and safe to send again
}

// send sends attempt (req itself or a rewound copy) and judges the
// outcome. Where the class of a failure decides whether a POST may go
// again, the attempt records whether it was written.
func (t *retryTransport) send(req, attempt *http.Request) outcome {
	var w *httpx.Written
	if httpx.NeedsClass(req) {
		w = new(httpx.Written)
		attempt = httpx.WatchWrite(attempt, w)
	}
	resp, err := httpx.Settle(t.next.RoundTrip(attempt))
	if err != nil {
		if mistake, ok := asRequestError(attempt, err); ok {
			return outcome{err: mistake}
		}
	}
	o := outcome{resp: resp, err: err}
	if req.Context().Err() != nil || (err != nil && permanent(err)) {
		return o
	}
	hint, hinted := httpx.ShouldRetryHint(resp)
	switch {
	case hinted && !hint:
		return o
	case hinted:
		o.class = httpx.Declined // the server says another try is safe
	case !t.p.ShouldRetry(attempt, resp, err):
		return o
	default:
		o.class = httpx.ClassOf(resp, err, w == nil || w.Wrote())
	}
	o.again = httpx.MayResend(req, o.class)
	return o
}

// retry runs the attempts after the first, whose outcome is o.
func (t *retryTransport) retry(req *http.Request, o outcome) (*http.Response, error) {
	ctx := req.Context()
	var bo backoff.BackOff
	// inFlight is an attempt that failed after it was written: the server
	// may still be running it, and answer a copy with the same key 409.
	var inFlight error
	for n := 1; n < t.maxAttempts; n++ {
		delay, fromHeader, ok := t.delay(&bo, o.resp, o.err)
		if !ok {
			return o.final(inFlight)
		}
		if dl, has := deadline.DeadlineOf(ctx, t.p.clock); has && clock.Add(t.p.clock.Now(), delay) >= dl {
			return o.final(inFlight)
		}
		ev := telemetry.Event{Attempt: n, Delay: delay, Err: o.err, Request: req}
		if o.resp != nil {
			ev.Status = o.resp.StatusCode
		}
		if !t.p.Budget.tryRetry() {
			ev.Kind = telemetry.BudgetExhausted
			telemetry.Emit(ctx, t.p.sink, ev)
			return o.final(inFlight)
		}
		next, rerr := httpx.Rewind(req)
		if rerr != nil {
			// Better the outcome we have than an error of our own.
			return o.final(inFlight)
		}
		next = httpx.GuardBody(next).WithContext(telemetry.WithAttempt(ctx, n+1))
		if fromHeader {
			ev.Kind = telemetry.RetryAfter
			telemetry.Emit(ctx, t.p.sink, ev)
		}
		ev.Kind = telemetry.Retry
		telemetry.Emit(ctx, t.p.sink, ev)
		if t.p.OnRetry != nil {
			t.p.OnRetry(req, n, delay, o.resp, o.err)
		}
		httpx.Discard(o.resp)
		if werr := t.wait(ctx, delay); werr != nil {
			httpx.CloseRequestBody(next)
			return nil, fmt.Errorf("resilient: retry wait after attempt %d (%w) ended: %w", n, causeOf(o.resp, o.err), werr)
		}
		if o.err != nil && o.class == httpx.Ambiguous {
			inFlight = o.err
		}
		o = t.send(req, next)
		if inFlight != nil && o.resp != nil && o.resp.StatusCode == http.StatusConflict && httpx.KeyOf(req) != httpx.NoKey {
			// The first copy is still running under this key: not an
			// answer. Ask again after a backoff.
			o.again, o.class = true, httpx.Declined
		}
		if !o.again {
			return o.final(inFlight)
		}
	}
	return o.final(inFlight)
}

// final is what the caller gets when the attempts end on o. A 409 that
// only says an earlier copy is still in flight is replaced by that copy's
// failure, the outcome that caused the retry.
func (o outcome) final(inFlight error) (*http.Response, error) {
	if inFlight != nil && o.resp != nil && o.resp.StatusCode == http.StatusConflict {
		httpx.Discard(o.resp)
		return nil, inFlight
	}
	return o.resp, o.err
}

// delay returns the wait before the next attempt, whether a Retry-After
// header (or a rate limit's RetryAfter) set it, and false if the retries
// should stop.
func (t *retryTransport) delay(bo *backoff.BackOff, resp *http.Response, err error) (d time.Duration, fromHeader, ok bool) {
	// A refused call says when its turn comes, as a server's Retry-After
	// does; a backoff would only be refused again.
	var rl *RateLimitedError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter, true, rl.RetryAfter <= t.p.MaxRetryAfter
	}
	if d, ok := retryAfter(resp, t.p.clock.Wall()); ok {
		return d, true, d <= t.p.MaxRetryAfter
	}
	if *bo == nil {
		if t.p.BackOff != nil {
			*bo = t.p.BackOff()
		} else {
			*bo = newFullJitter(t.p.initialDelay(), t.p.maxDelay())
		}
	}
	d = (*bo).NextBackOff()
	return d, false, d != backoff.Stop && d >= 0
}

// wait sleeps for d unless ctx ends first, in which case it returns
// ctx.Err().
func (t *retryTransport) wait(ctx context.Context, d time.Duration) error {
	if d > 0 {
		timer := t.p.clock.NewTimer(d)
		select {
		case <-timer.C():
			return nil
		case <-ctx.Done():
			timer.Stop()
		}
	}
	return ctx.Err()
}

// CloseIdleConnections forwards to the next transport.
func (t *retryTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }

// causeOf describes a failed attempt for an error message.
func causeOf(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	return errors.New(resp.Status)
}
