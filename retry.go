package resilient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/resilient-go/resilient/internal/body"
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

	sink  telemetry.Sink // nil means the span in the request's context
	timer timerFunc      // nil means time.NewTimer
}

// timerFunc starts a timer for d, returning its channel and its Stop.
type timerFunc func(d time.Duration) (<-chan time.Time, func() bool)

func realTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// validate panics on a field out of range, naming it.
func (p *RetryPolicy) validate() {
	if p.MaxAttempts < 0 {
		panic("resilient: RetryPolicy.MaxAttempts must not be negative, got " + strconv.Itoa(p.MaxAttempts))
	}
	for _, f := range [...]struct {
		name string
		d    time.Duration
	}{{"InitialDelay", p.InitialDelay}, {"MaxDelay", p.MaxDelay}, {"MaxRetryAfter", p.MaxRetryAfter}} {
		if f.d < 0 {
			panic("resilient: RetryPolicy." + f.name + " must not be negative, got " + f.d.String())
		}
	}
	if p.BackOff == nil && p.initialDelay() > p.maxDelay() {
		panic("resilient: RetryPolicy.InitialDelay (" + p.initialDelay().String() +
			") is longer than MaxDelay (" + p.maxDelay().String() + ")")
	}
	p.Budget.validate()
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
				return Timeout(total)(next)
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
			t.p.Budget = new(RetryBudget)
		}
		if t.p.timer == nil {
			t.p.timer = realTimer
		}
		return t
	}
}

// WithRetry sets the retry policy of the standard pipeline and switches
// the stage on. It panics on a bad policy, as Retry does.
func WithRetry(p RetryPolicy) Option {
	p.validate()
	return func(c *config) {
		c.retry = p
		c.on[StageRetry] = true
		c.on[StageHedge] = false
	}
}

type retryTransport struct {
	next        http.RoundTripper
	p           RetryPolicy // defaults filled in
	maxAttempts int
	total       time.Duration // > 0: the call's total timeout, set up lazily
}

var _ http.RoundTripper = (*retryTransport)(nil)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := clock.Now() // for the budget and the total deadline alike
	t.p.Budget.onCallAt(start)
	resp, err := t.next.RoundTrip(req)
	if !t.retryable(req, resp, err) {
		return resp, err
	}
	if t.total > 0 {
		return t.retryWithin(req, clock.Add(start, t.total), resp, err)
	}
	return t.retry(req, resp, err)
}

// retryWithin is retry under the total deadline end, which from here on
// bounds the waits, the later attempts and the last body read, as a
// Timeout stage above would have.
func (t *retryTransport) retryWithin(req *http.Request, end time.Duration, resp *http.Response, err error) (*http.Response, error) {
	parent := req.Context()
	if pd, ok := deadline.DeadlineOf(parent); ok && end >= pd {
		return t.retry(req, resp, err) // the caller's deadline is sooner
	}
	c := &timeoutCall{after: t.total}
	c.ctx.Init(parent, end, nil)
	resp, err = t.retry(req.WithContext(&c.ctx), resp, err)
	if err != nil {
		err = c.MapReadError(err)
		c.ctx.Release()
		return nil, err
	}
	body.TrackInto(resp, &c.body, c)
	return resp, nil
}

// retryable reports whether an outcome may be retried at all.
func (t *retryTransport) retryable(req *http.Request, resp *http.Response, err error) bool {
	if err != nil && permanent(err) {
		return false
	}
	return t.p.ShouldRetry(req, resp, err) && req.Context().Err() == nil
}

// retry runs the attempts after the first, which failed with resp or err.
func (t *retryTransport) retry(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	if !httpx.Replayable(req) {
		return resp, err
	}
	ctx := req.Context()
	var bo backoff.BackOff
	for n := 1; n < t.maxAttempts; n++ {
		delay, fromHeader, ok := t.delay(&bo, resp, err)
		if !ok {
			return resp, err
		}
		if dl, has := deadline.DeadlineOf(ctx); has && clock.Add(clock.Now(), delay) >= dl {
			return resp, err
		}
		ev := telemetry.Event{Attempt: n, Delay: delay, Err: err}
		if resp != nil {
			ev.Status = resp.StatusCode
		}
		if !t.p.Budget.tryRetry() {
			ev.Kind = telemetry.BudgetExhausted
			telemetry.Emit(ctx, t.p.sink, ev)
			return resp, err
		}
		next, rerr := httpx.Rewind(req)
		if rerr != nil {
			// Better the outcome we have than an error of our own.
			return resp, err
		}
		next = next.WithContext(telemetry.WithAttempt(ctx, n+1))
		if fromHeader {
			ev.Kind = telemetry.RetryAfter
			telemetry.Emit(ctx, t.p.sink, ev)
		}
		ev.Kind = telemetry.Retry
		telemetry.Emit(ctx, t.p.sink, ev)
		if t.p.OnRetry != nil {
			t.p.OnRetry(req, n, delay, resp, err)
		}
		httpx.Discard(resp)
		if werr := t.wait(ctx, delay); werr != nil {
			httpx.CloseRequestBody(next)
			return nil, fmt.Errorf("resilient: retry wait after attempt %d (%w) ended: %w", n, causeOf(resp, err), werr)
		}
		resp, err = t.next.RoundTrip(next)
		if !t.retryable(next, resp, err) {
			return resp, err
		}
	}
	return resp, err
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
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if v := resp.Header.Get("Retry-After"); v != "" {
			if d, ok := parseRetryAfter(v, time.Now()); ok {
				return d, true, d <= t.p.MaxRetryAfter
			}
		}
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
		c, stop := t.p.timer(d)
		select {
		case <-c:
			return nil
		case <-ctx.Done():
			stop()
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

// DefaultShouldRetry is the retry decision of a zero RetryPolicy: retry
// transport errors (attempt timeouts among them) and 408, 429, 500, 502,
// 503 and 504 responses. It never retries the caller's own cancellation or
// deadline, a TLS certificate error, ErrCircuitOpen or ErrBulkheadFull.
func DefaultShouldRetry(req *http.Request, resp *http.Response, err error) bool {
	if err != nil {
		return !permanent(err) && (req == nil || req.Context().Err() == nil)
	}
	if resp == nil {
		return false
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// permanent reports errors another attempt cannot fix: a rejection by a
// breaker or bulkhead (retrying only burns the budget) and a certificate
// the client does not trust.
func permanent(err error) bool {
	if errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrBulkheadFull) {
		return true
	}
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP-date
// (RFC 9110 10.2.3), as a wait from now. A date in the past means no wait.
// Huge second counts saturate rather than overflow.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		var secs int64
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			secs = min(secs*10+int64(c-'0'), maxSecs)
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, at.Sub(now)), true
}

// fullJitter draws each delay uniformly from [0, d) where d is the next
// step of an exponential backoff without jitter of its own.
type fullJitter struct {
	exp backoff.ExponentialBackOff
}

func newFullJitter(initial, maxDelay time.Duration) *fullJitter {
	j := &fullJitter{exp: backoff.ExponentialBackOff{
		InitialInterval: initial,
		Multiplier:      2,
		MaxInterval:     maxDelay,
		Stop:            backoff.Stop,
		Clock:           backoff.SystemClock,
	}}
	j.exp.Reset()
	return j
}

func (j *fullJitter) NextBackOff() time.Duration {
	d := j.exp.NextBackOff()
	if d <= 0 {
		return d
	}
	return rand.N(d)
}

func (j *fullJitter) Reset() { j.exp.Reset() }
