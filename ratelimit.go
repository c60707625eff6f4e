package resilient

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/deadline"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/registry"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// RateLimitPolicy configures RateLimit. The zero value is the standard
// pipeline's default: no local rate, and a cool-down per authority whenever
// a server answers 429 or 503 with Retry-After.
type RateLimitPolicy struct {
	// Rate is how many calls a second each key may send. Zero means no
	// local rate: only the servers' cool-downs apply.
	Rate float64
	// Burst is how many calls a key may send at once above the rate, after
	// a quiet spell: at Rate 100 and Burst 10, a key sends 10 + 100·t calls
	// in t seconds at most. Zero means 1. Ignored without a Rate. A burst
	// that would take the rate more than 73 years is cut to that.
	Burst int
	// MaxWait is how long a call over the rate, or during a cool-down, may
	// wait for its turn; a call whose turn comes later, or after its own
	// deadline, is refused at once. Zero means refused at once.
	MaxWait time.Duration
	// Key picks the limit (and the cool-down) a request counts against.
	// Nil means one per authority (scheme://host:port).
	Key func(*http.Request) string
	// Fleet, if set, holds the rate for all the processes of a fleet; while
	// it fails, each process limits alone. Nil means this process alone.
	// Cool-downs stay per process.
	Fleet Fleet
	// MaxCoolDown caps the cool-down a server's Retry-After starts. Zero
	// means 30 s (DefaultMaxRetryAfter); the standard pipeline uses the
	// retry policy's MaxRetryAfter when that is set.
	MaxCoolDown time.Duration
	// IgnoreRetryAfter switches the cool-down off: a 429 or 503 then holds
	// back only the call that got it (through the Retry stage's wait).
	IgnoreRetryAfter bool
	// MaxKeys bounds the number of limits kept; idle ones (no turn reserved
	// ahead, no cool-down) are forgotten first. Zero means 1024.
	MaxKeys int
	// Telemetry is where the stage reports refusals, waits and cool-downs.
	// The zero value means the global providers.
	Telemetry Telemetry

	sink  telemetry.Sink // nil: Telemetry's
	clock clock.Clock    // nil: clock.Real
}

// RateLimitedError is the error of a call a RateLimit stage refused without
// sending it. It matches errors.Is(err, ErrRateLimited).
type RateLimitedError struct {
	// Authority is the refused request's scheme://host:port.
	Authority string
	// Key is the limit's key: Authority, unless RateLimitPolicy.Key is set.
	Key string
	// RetryAfter is how long until the call's turn would have come, or
	// until the server's cool-down ends.
	RetryAfter time.Duration
	// CoolDown is true when a server's Retry-After held the call, false
	// when the local rate did.
	CoolDown bool
	// Waited is how long the call waited before it was refused.
	Waited time.Duration
	// Err is the caller's context error if the wait ended because the
	// call's context did; otherwise nil.
	Err error
}

func (e *RateLimitedError) Error() string {
	msg := "resilient: rate limited for " + e.Authority
	if e.Key != e.Authority {
		msg += " (limit " + strconv.Quote(e.Key) + ")"
	}
	if e.CoolDown {
		msg += ", server cool-down"
	}
	msg += ", retry after " + e.RetryAfter.Round(time.Millisecond).String()
	if e.Waited > 0 {
		msg += ", waited " + e.Waited.Round(time.Microsecond).String()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches ErrRateLimited.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns the context error that ended the wait, if any.
func (e *RateLimitedError) Unwrap() error { return e.Err }

// WithRateLimit sets the standard pipeline's rate limit policy.
func WithRateLimit(p RateLimitPolicy) Option {
	p.validate() // panic at the option, not later
	return stageOption(StageRateLimit, func(c *config) { c.rateLimit = p })
}

// RateLimit returns a stage that holds each key (authority by default) to
// Rate calls a second with Burst at once, and holds every call to a host
// that answered 429 or 503 with Retry-After until that time has passed (a
// cool-down). A call over the rate or in a cool-down waits for its turn up
// to MaxWait and never past its deadline; otherwise it is refused at once
// with a *RateLimitedError that says when to come back, and nothing is
// sent. It panics on a negative field, or a Rate that is NaN or infinite.
//
// The limit is a GCRA (generic cell rate algorithm): one word per key, the
// time the next call is due, moved by compare-and-swap; the Fleet's
// limiter follows the same rule across processes. The stage is safe for
// concurrent use.
func RateLimit(p RateLimitPolicy) Middleware {
	p.validate()
	return func(next http.RoundTripper) http.RoundTripper {
		if p.sink == nil {
			p.sink = p.Telemetry.sink()
		}
		t := &rateLimitTransport{next: httpx.OrDefault(next), p: p, clk: clock.Or(p.clock)}
		t.maxCoolDown = orDefault(p.MaxCoolDown, DefaultMaxRetryAfter)
		if p.Rate > 0 {
			t.burst = max(p.Burst, 1)
			t.interval = span(float64(time.Second)/p.Rate, 1, maxSpan)
			t.tolerance = span(float64(t.interval)*float64(t.burst-1), 0, maxSpan-t.interval)
		}
		t.reg = registry.New(registry.Policy[compartmentKey, *limiter]{
			Max:  p.MaxKeys,
			New:  func(k compartmentKey) *limiter { return &limiter{key: k.String()} },
			Idle: t.idle,
		})
		return t
	}
}

// check returns a *fieldError for the first field out of range.
func (p *RateLimitPolicy) check() error {
	if math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) || p.Rate < 0 {
		return &fieldError{"RateLimitPolicy.Rate", "must be a finite number not below zero, got " +
			strconv.FormatFloat(p.Rate, 'g', -1, 64)}
	}
	return firstError(
		notNegative("RateLimitPolicy.Burst", p.Burst),
		notNegative("RateLimitPolicy.MaxWait", p.MaxWait),
		notNegative("RateLimitPolicy.MaxCoolDown", p.MaxCoolDown),
		notNegative("RateLimitPolicy.MaxKeys", p.MaxKeys),
	)
}

func (p *RateLimitPolicy) validate() { mustValid(p.check()) }

// maxSpan bounds the GCRA's durations (73 years) so that sums of a few of
// them cannot overflow, however small the Rate.
const maxSpan = time.Duration(1 << 61)

// span converts ns to a Duration in [lo, hi].
func span(ns float64, lo, hi time.Duration) time.Duration {
	if ns >= float64(hi) {
		return hi
	}
	return max(time.Duration(ns), lo)
}

type rateLimitTransport struct {
	next http.RoundTripper
	p    RateLimitPolicy
	clk  clock.Clock
	reg  *registry.Map[compartmentKey, *limiter]

	burst       int
	interval    time.Duration // GCRA's T, 1/Rate; zero without a Rate
	tolerance   time.Duration // GCRA's τ, (Burst-1)·T: how far ahead of now turns may be taken at once
	maxCoolDown time.Duration

	// cooling counts the keys whose cool-down is set. It may overcount
	// (a key forgotten while set), which only costs the lookup it saves.
	cooling atomic.Int64
}

var _ http.RoundTripper = (*rateLimitTransport)(nil)

// limiter is one key's state. Each field is one word read and moved
// without a lock, so calls to one host never convoy on a mutex.
type limiter struct {
	key       string
	tat       atomic.Int64 // GCRA's theoretical arrival time: when the next turn is due, a clock offset
	coolUntil atomic.Int64 // when the server's cool-down ends, a clock offset; 0: none
}

// idle reports whether forgetting l loses nothing: no turn taken ahead and
// no cool-down running. It runs only when the registry must evict.
func (t *rateLimitTransport) idle(l *limiter) bool {
	now := int64(t.clk.Now())
	return l.tat.Load() <= now && l.coolUntil.Load() <= now
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.interval == 0 && t.cooling.Load() == 0 {
		// No rate and no host cooling down: nothing to look up on the
		// happy path (measured: a registry lookup a call).
		resp, err := t.next.RoundTrip(req)
		if t.startsCoolDown(resp, err) {
			t.coolDown(req, lookup(t.reg, t.p.Key, req), resp)
		}
		return resp, err
	}
	l := lookup(t.reg, t.p.Key, req)
	// Without a rate and a cool-down the happy path reads no clock.
	if t.interval > 0 || l.coolUntil.Load() != 0 {
		if err := t.admit(req, l); err != nil {
			httpx.CloseRequestBody(req)
			telemetry.Emit(req.Context(), t.p.sink, telemetry.Event{
				Kind: telemetry.RateLimited, Authority: l.key, Delay: err.RetryAfter, Err: err,
			})
			return nil, err
		}
	}
	resp, err := t.next.RoundTrip(req)
	if t.startsCoolDown(resp, err) {
		t.coolDown(req, l, resp)
	}
	return resp, err
}

// startsCoolDown reports whether an outcome may start a host's cool-down.
func (t *rateLimitTransport) startsCoolDown(resp *http.Response, err error) bool {
	return err == nil && !t.p.IgnoreRetryAfter &&
		(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable)
}

// maxRounds bounds how often one call finds the cool-down moved on while it
// waited (another 429 arrived) before it gives up.
const maxRounds = 4

// admit holds the call until l's cool-down is over and its turn under the
// rate has come, or returns the refusal if that is later than the call may
// wait.
func (t *rateLimitTransport) admit(req *http.Request, l *limiter) *RateLimitedError {
	ctx := req.Context()
	start := t.clk.Now()
	now := start
	limit := t.waitLimit(ctx)
	for range maxRounds {
		until := time.Duration(l.coolUntil.Load())
		if until == 0 || until <= now {
			if until != 0 && l.coolUntil.CompareAndSwap(int64(until), 0) { // over: back to the clock-free path
				t.cooling.Add(-1)
			}
			return t.take(req, l, start, now, limit)
		}
		wait := until - now
		if wait > limit-(now-start) {
			return t.refuse(req, l, wait, true, now-start, nil)
		}
		if err := t.sleep(ctx, wait); err != nil {
			return t.refuse(req, l, wait, true, t.clk.Now()-start, err)
		}
		now = t.clk.Now()
	}
	return t.refuse(req, l, max(time.Duration(l.coolUntil.Load())-now, 0), true, now-start, nil)
}

// waitLimit is how long the call may wait: MaxWait, cut short so that its
// turn comes before its deadline.
func (t *rateLimitTransport) waitLimit(ctx context.Context) time.Duration {
	limit := t.p.MaxWait
	if limit <= 0 {
		return 0
	}
	if dl, ok := deadline.DeadlineOf(ctx, t.clk); ok {
		// A turn at the deadline is no turn: the call would fail there.
		limit = max(min(limit, dl-t.clk.Now()-1), 0)
	}
	return limit
}

// take reserves the call's turn under the rate and waits for it. start is
// when the call arrived, now the time, limit the most it may wait in all.
func (t *rateLimitTransport) take(req *http.Request, l *limiter, start, now, limit time.Duration) *RateLimitedError {
	if t.interval == 0 {
		return nil
	}
	ctx := req.Context()
	limit = max(limit-(now-start), 0)
	wait, due, ok := t.reserve(ctx, l, now, limit)
	if !ok {
		return t.refuse(req, l, wait, false, now-start, nil)
	}
	if wait > 0 {
		if err := t.sleep(ctx, wait); err != nil {
			if due != 0 {
				// Hand the turn back, if nobody has queued behind it.
				l.tat.CompareAndSwap(int64(due), int64(due-t.interval))
			}
			return t.refuse(req, l, wait, false, t.clk.Now()-start, err)
		}
		telemetry.Emit(ctx, t.p.sink, telemetry.Event{
			Kind: telemetry.RateLimitWait, Authority: l.key, Delay: t.clk.Now() - start,
		})
	}
	return nil
}

// reserve takes the next turn of l if it comes within limit of now, and
// returns how long until it comes and the new due time (zero when the
// fleet holds the turn). When the turn is later it reserves nothing.
func (t *rateLimitTransport) reserve(ctx context.Context, l *limiter, now, limit time.Duration) (wait, due time.Duration, ok bool) {
	if f := t.p.Fleet; f != nil {
		wait, ok, err := f.TakeRate(ctx, l.key, t.p.Rate, t.burst, limit)
		if err == nil {
			return max(wait, 0), 0, ok
		}
		// The store is away: this process limits alone until it is back.
	}
	for {
		old := time.Duration(l.tat.Load())
		tat := max(old, now)
		// A turn is free when the next is due no more than τ ahead.
		wait = tat - now - t.tolerance // in this order: no overflow
		if wait > limit {
			return wait, 0, false
		}
		due = clock.Add(tat, t.interval)
		if l.tat.CompareAndSwap(int64(old), int64(due)) {
			return max(wait, 0), due, true
		}
	}
}

// sleep waits d on the stage's clock unless ctx ends first.
func (t *rateLimitTransport) sleep(ctx context.Context, d time.Duration) error {
	tm := t.clk.NewTimer(d)
	select {
	case <-tm.C():
		return nil
	case <-ctx.Done():
		tm.Stop()
		return ctx.Err()
	}
}

// refuse builds the error of a refused call.
func (t *rateLimitTransport) refuse(req *http.Request, l *limiter, retryAfter time.Duration, cool bool, waited time.Duration, cause error) *RateLimitedError {
	e := &RateLimitedError{Authority: l.key, Key: l.key, RetryAfter: retryAfter, CoolDown: cool, Waited: waited, Err: cause}
	if t.p.Key != nil {
		e.Authority = httpx.AuthorityOf(req).String()
	}
	return e
}

// coolDown starts or extends l's cool-down from resp's Retry-After,
// capped by MaxCoolDown. The Retry stage above waits the same Retry-After
// before its own retry, measured from later than now: that retry arrives
// when the cool-down it caused is over, and is not refused by it.
func (t *rateLimitTransport) coolDown(req *http.Request, l *limiter, resp *http.Response) {
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.clk.Wall())
	if !ok || d <= 0 {
		return
	}
	d = min(d, t.maxCoolDown)
	until := int64(clock.Add(t.clk.Now(), d))
	for {
		old := l.coolUntil.Load()
		if old >= until {
			return
		}
		if l.coolUntil.CompareAndSwap(old, until) {
			if old == 0 {
				t.cooling.Add(1)
			}
			break
		}
	}
	telemetry.Emit(req.Context(), t.p.sink, telemetry.Event{
		Kind: telemetry.CoolDown, Authority: l.key, Delay: d, Status: resp.StatusCode,
	})
}

// CloseIdleConnections forwards to the next transport.
func (t *rateLimitTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
