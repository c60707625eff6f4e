package resilient

import (
	"context"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/resilient-go/resilient/internal/adaptive"
	"github.com/resilient-go/resilient/internal/body"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/pad"
	"github.com/resilient-go/resilient/internal/registry"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// Defaults of a BulkheadPolicy.
const (
	DefaultMaxConcurrent     = 256
	DefaultInitialConcurrent = 8
	DefaultLatencyTolerance  = 2.0
	DefaultAdaptiveMaxWait   = time.Second
)

// BulkheadPolicy configures Bulkhead. The zero value is the default policy:
// 256 calls at a time per authority, and a call that finds its pool full is
// rejected at once.
type BulkheadPolicy struct {
	// MaxConcurrent is how many calls to one key may be in flight; a call
	// holds its slot until its response body is closed or read to the end.
	// Zero means 256.
	MaxConcurrent int
	// MaxWait is how long a call waits for a slot, never past its
	// context's deadline. Zero means a full pool rejects at once.
	MaxWait time.Duration
	// MaxQueue bounds the calls waiting for a slot of one key when MaxWait
	// is set; a call that would be one more is rejected at once. Zero means
	// MaxConcurrent.
	MaxQueue int
	// Key picks the pool a request draws from. Nil means one pool per
	// authority (scheme://host:port, host compared case-insensitively).
	Key func(*http.Request) string
	// MaxKeys bounds the number of pools kept; empty pools are forgotten
	// first, and a pool with slots in use never is. Zero means 1024.
	MaxKeys int
	// Telemetry is where the stage reports rejections, and its slots-in-use
	// and adaptive-limit gauges. The zero value means the global providers.
	Telemetry Telemetry

	// Within MaxConcurrent, each key's calls in flight are held to an
	// adaptive limit that follows the host's latency (see Bulkhead). These
	// fields tune it.

	// DisableAdaptive switches the adaptive limit off: MaxConcurrent alone
	// bounds a key.
	DisableAdaptive bool
	// InitialConcurrent is where the adaptive limit starts, and goes back
	// to for a key the stage forgot. Zero means 8 (at most MaxConcurrent).
	InitialConcurrent int
	// MinConcurrent is the least the adaptive limit falls to. Zero means 1.
	MinConcurrent int
	// LatencyTolerance is how many times its normal latency a host may
	// take before the limit comes down. Zero means 2.
	LatencyTolerance float64
	// AdaptiveMaxWait is how long a call waits for a slot under the
	// adaptive limit, never past its deadline; then it is refused with a
	// *BulkheadFullError. Zero means 1 s. A call with a deadline may be
	// refused sooner at an overloaded host: see Bulkhead.
	AdaptiveMaxWait time.Duration

	sink  telemetry.Sink // nil: Telemetry's
	clock clock.Clock    // nil: clock.Real
}

// BulkheadFullError is the error of a call a bulkhead rejected because its
// pool had no free slot within MaxWait. It matches
// errors.Is(err, ErrBulkheadFull).
type BulkheadFullError struct {
	// Authority is the rejected request's scheme://host:port.
	Authority string
	// Key is the pool's key: Authority, unless BulkheadPolicy.Key is set.
	Key string
	// MaxConcurrent is the pool's size.
	MaxConcurrent int
	// Waited is how long the call waited for a slot.
	Waited time.Duration
	// OpenBodies is how many slots are held by responses whose bodies are
	// still open: each holds its slot until closed or read to the end (or
	// until its attempt's deadline has passed), so a caller that forgets to
	// close them fills the pool.
	OpenBodies int
	// AdaptiveLimit, if not zero, is the adaptive limit that refused the
	// call: the host's latency says it is overloaded at that many.
	AdaptiveLimit int
	// Overloaded says the call, which has a deadline, was refused without
	// waiting out its turn: the limit was cut for an overload while a
	// limit's worth of calls waited, so its turn would come late or not
	// at all, and a fallback now serves it better.
	Overloaded bool
	// Err is the caller's context error if the wait ended because the
	// call's context did; otherwise nil.
	Err error
}

func (e *BulkheadFullError) Error() string {
	msg := "resilient: bulkhead full for " + e.Authority
	if e.Key != e.Authority {
		msg += " (pool " + strconv.Quote(e.Key) + ")"
	}
	if e.AdaptiveLimit > 0 {
		msg += " (adaptive limit " + strconv.Itoa(e.AdaptiveLimit) + " reached"
		if e.Overloaded {
			msg += ", host overloaded: refused so that the caller can fall back in time"
		}
	} else {
		msg += " (" + strconv.Itoa(e.MaxConcurrent) + " in use"
	}
	if e.OpenBodies > 0 {
		msg += ", " + strconv.Itoa(e.OpenBodies) + " held by response bodies not closed"
	}
	if e.Waited > 0 {
		msg += ", waited " + e.Waited.Round(time.Microsecond).String()
	}
	msg += ")"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches ErrBulkheadFull.
func (e *BulkheadFullError) Is(target error) bool { return target == ErrBulkheadFull }

// Unwrap returns the context error that ended the wait, if any.
func (e *BulkheadFullError) Unwrap() error { return e.Err }

// WithBulkhead sets the standard pipeline's bulkhead policy.
func WithBulkhead(p BulkheadPolicy) Option {
	p.withDefaults() // panic at the option, not later
	return stageOption(StageBulkhead, func(c *config) { c.bulkhead = p })
}

// Bulkhead returns a stage that bounds the calls in flight to each
// authority (or BulkheadPolicy.Key), so that one slow dependency cannot
// take every goroutine. A call that finds its pool full waits up to
// MaxWait and then fails with a *BulkheadFullError. The slot is held until
// the response body is closed or read to the end, and released exactly
// once on every path. It panics on a negative field.
//
// Within MaxConcurrent, unless DisableAdaptive, a key's calls are held to
// an adaptive limit that follows the host's latency. A call over it waits
// up to AdaptiveMaxWait: in order of arrival while a limit's worth or
// fewer wait, newest first past that. Once the limit was cut for an
// overload while calls waited, a call with a deadline that finds a limit's
// worth waiting is refused at once, and those already waiting behind the
// newest limit's worth are turned away, so that their fallback answers in
// time.
//
// The stage is safe for concurrent use. It reports each pool's slots in use
// as the gauge resilient.client.bulkhead.in_use on the policy's
// MeterProvider.
func Bulkhead(p BulkheadPolicy) Middleware {
	p = p.withDefaults()
	return func(next http.RoundTripper) http.RoundTripper {
		t := &bulkheadTransport{next: httpx.OrDefault(next), p: p}
		t.reg = registry.New(registry.Policy[compartmentKey, *pool]{
			Max:    p.MaxKeys,
			New:    t.newPool,
			Idle:   func(p *pool) bool { return p.users.Load() == 0 },
			Retire: func(p *pool) bool { return p.users.CompareAndSwap(0, retired) },
		})
		t.adaptive = adaptive.Settings{
			Initial: int64(p.InitialConcurrent), Min: int64(p.MinConcurrent), Max: int64(p.MaxConcurrent),
			Tolerance: p.LatencyTolerance, Clock: p.clock, MinWindow: minAdaptiveWindow, MinSamples: minAdaptiveSamples,
		}
		telemetry.RegisterWeakGauge(p.Telemetry.MeterProvider, telemetry.BulkheadGauge, t)
		if !p.DisableAdaptive {
			telemetry.RegisterWeakGauge(p.Telemetry.MeterProvider, telemetry.AdaptiveGauge, (*limitGauge)(t))
		}
		return t
	}
}

// check returns a *fieldError for the first field out of range.
func (p BulkheadPolicy) check() error {
	return firstError(
		notNegative("BulkheadPolicy.MaxConcurrent", p.MaxConcurrent),
		notNegative("BulkheadPolicy.MaxWait", p.MaxWait),
		notNegative("BulkheadPolicy.MaxQueue", p.MaxQueue),
		notNegative("BulkheadPolicy.MaxKeys", p.MaxKeys),
		notNegative("BulkheadPolicy.InitialConcurrent", p.InitialConcurrent),
		notNegative("BulkheadPolicy.MinConcurrent", p.MinConcurrent),
		notNegative("BulkheadPolicy.AdaptiveMaxWait", p.AdaptiveMaxWait),
		atLeastOne("BulkheadPolicy.LatencyTolerance", p.LatencyTolerance),
	)
}

func (p BulkheadPolicy) withDefaults() BulkheadPolicy {
	mustValid(p.check())
	if p.MaxConcurrent == 0 {
		p.MaxConcurrent = DefaultMaxConcurrent
	}
	if p.MaxQueue == 0 {
		p.MaxQueue = p.MaxConcurrent
	}
	p.MinConcurrent = min(max(p.MinConcurrent, 1), p.MaxConcurrent)
	if p.InitialConcurrent == 0 {
		p.InitialConcurrent = DefaultInitialConcurrent
	}
	p.InitialConcurrent = min(max(p.InitialConcurrent, p.MinConcurrent), p.MaxConcurrent)
	if p.LatencyTolerance == 0 {
		p.LatencyTolerance = DefaultLatencyTolerance
	}
	p.AdaptiveMaxWait = orDefault(p.AdaptiveMaxWait, DefaultAdaptiveMaxWait)
	if p.sink == nil {
		p.sink = p.Telemetry.sink()
	}
	p.clock = clock.Or(p.clock)
	return p
}

type bulkheadTransport struct {
	next     http.RoundTripper
	p        BulkheadPolicy
	adaptive adaptive.Settings
	reg      *registry.Map[compartmentKey, *pool]
}

var _ http.RoundTripper = (*bulkheadTransport)(nil)

// retired marks a pool the registry has forgotten: far enough below zero
// that late increments never bring it back.
const retired = math.MinInt64 / 2

// pool is one key's slots. It is its own body.Releaser, so holding a slot
// until the body is done costs no allocation.
//
// Without MaxWait nobody waits, and users alone is the count of slots in
// use, taken by compare-and-swap: semaphore.Weighted's mutex formed a
// convoy under parallel load (390 ns a call against 120 serial). With
// MaxWait the semaphore queues the waiters, in order.
type pool struct {
	sem     *semaphore.Weighted // nil without MaxWait
	lim     *adaptive.Limiter   // nil with DisableAdaptive
	key     string
	_       pad.Line     // the counters below change on every call
	users   atomic.Int64 // calls holding or waiting for a slot; retired once forgotten
	waiters atomic.Int64 // calls waiting for a slot
	bodies  atomic.Int64 // slots held by response bodies
}

func (t *bulkheadTransport) newPool(k compartmentKey) *pool {
	p := &pool{key: k.String()}
	if !t.p.DisableAdaptive {
		p.lim = adaptive.NewLimiter(&t.adaptive)
	}
	if t.p.MaxWait > 0 {
		p.sem = semaphore.NewWeighted(int64(t.p.MaxConcurrent))
	}
	return p
}

// tryAcquire takes a slot of req's pool without waiting. It fails only
// when the pool is full.
func (t *bulkheadTransport) tryAcquire(req *http.Request) (*pool, bool) {
	limit := int64(t.p.MaxConcurrent)
	for {
		p := lookup(t.reg, t.p.Key, req)
		n := p.users.Load()
		for n >= 0 && n < limit {
			if p.users.CompareAndSwap(n, n+1) {
				return p, true
			}
			n = p.users.Load()
		}
		if n >= limit {
			return p, false
		}
		runtime.Gosched() // retired; the registry is about to make a fresh one
	}
}

// pin returns the pool for req with the call counted as a user, so the
// registry cannot forget the pool while the call needs it.
func (t *bulkheadTransport) pin(req *http.Request) *pool {
	for {
		p := lookup(t.reg, t.p.Key, req)
		if p.users.Add(1) > 0 {
			return p
		}
		// Retired between lookup and pin; the registry is about to drop
		// it and make a fresh one.
		runtime.Gosched()
	}
}

// Release frees one slot; body.Track calls it once per call.
func (p *pool) Release() {
	if p.sem != nil {
		p.sem.Release(1)
	}
	p.users.Add(-1)
}

func (t *bulkheadTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.p.MaxWait <= 0 {
		p, ok := t.tryAcquire(req)
		if !ok {
			return nil, t.reject(req, p, t.full(req, p, 0, nil))
		}
		return t.send(req, p)
	}
	p := t.pin(req)
	if !p.sem.TryAcquire(1) {
		if err := t.wait(req, p); err != nil {
			p.users.Add(-1)
			return nil, t.reject(req, p, err)
		}
	}
	return t.send(req, p)
}

func (t *bulkheadTransport) reject(req *http.Request, p *pool, err *BulkheadFullError) error {
	httpx.CloseRequestBody(req)
	telemetry.Emit(req.Context(), t.p.sink, telemetry.Event{
		Kind:      telemetry.BulkheadRejected,
		Authority: p.key,
		Delay:     err.Waited,
		Err:       err,
	})
	return err
}

// send calls the next transport holding a slot, and hands the slot to the
// response body. A panic below releases it.
func (t *bulkheadTransport) send(req *http.Request, p *pool) (*http.Response, error) {
	handed := false
	defer func() {
		if !handed {
			p.Release()
		}
	}()
	var resp *http.Response
	var err error
	if p.lim != nil {
		resp, err = t.sendLimited(req, p)
	} else {
		resp, err = httpx.Settle(t.next.RoundTrip(req))
	}
	if err != nil {
		return nil, err
	}
	handed = true
	p.bodies.Add(1)
	body.Track(resp, (*bodySlot)(p))
	return resp, nil
}

// bodySlot is a pool seen as the slot of a response body: it counts the
// slots bodies hold, for the full-pool error.
type bodySlot pool

// Release frees the body's slot.
func (s *bodySlot) Release() {
	p := (*pool)(s)
	p.bodies.Add(-1)
	p.Release()
}

// wait queues for a slot for at most MaxWait and never past the call's
// deadline. TryAcquire has failed, so the pool is full or has waiters
// (TryAcquire fails whenever anyone waits, which keeps the queue fair).
func (t *bulkheadTransport) wait(req *http.Request, p *pool) *BulkheadFullError {
	// semaphore.Weighted's queue is unbounded; this bounds it.
	if p.waiters.Add(1) > int64(t.p.MaxQueue) {
		p.waiters.Add(-1)
		return t.full(req, p, 0, nil)
	}
	defer p.waiters.Add(-1)
	parent := req.Context()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	timer := t.p.clock.AfterFunc(t.p.MaxWait, cancel)
	defer timer.Stop()
	start := t.p.clock.Now()
	// Acquire fails on a done context even with free slots, and on failure
	// holds nothing: no Release on this path.
	if err := p.sem.Acquire(ctx, 1); err != nil {
		return t.full(req, p, t.p.clock.Now()-start, parent.Err())
	}
	return nil
}

func (t *bulkheadTransport) full(req *http.Request, p *pool, waited time.Duration, cause error) *BulkheadFullError {
	e := &BulkheadFullError{Authority: p.key, Key: p.key, MaxConcurrent: t.p.MaxConcurrent, Waited: waited, Err: cause,
		OpenBodies: int(max(p.bodies.Load(), 0))}
	if t.p.Key != nil {
		e.Authority = httpx.AuthorityOf(req).String()
	}
	return e
}

// Observe reports each pool's slots in use. It satisfies telemetry.Gauge.
func (t *bulkheadTransport) Observe(yield func(key string, inUse int64)) {
	t.reg.Range(func(_ compartmentKey, p *pool) bool {
		n := p.users.Load() - p.waiters.Load()
		if n < 0 {
			return true // retired
		}
		yield(p.key, min(n, int64(t.p.MaxConcurrent)))
		return true
	})
}

var _ telemetry.Gauge = (*bulkheadTransport)(nil)

// CloseIdleConnections forwards to the next transport.
func (t *bulkheadTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
