package resilient

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/body"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// Defaults of a HedgePolicy.
const (
	DefaultMaxHedges = 1
	// DefaultHedgeDelay is the adaptive delay until the stage has seen
	// enough calls (20) to estimate its own p95 latency.
	DefaultHedgeDelay = 100 * time.Millisecond
	// MinHedgeDelay is the floor of the adaptive delay, so that a very
	// fast dependency is not hedged on every scheduling hiccup.
	MinHedgeDelay = 10 * time.Millisecond
)

// HedgePolicy configures the Hedge stage. The zero value is the default:
// one hedge, sent when the first attempt has not answered within the
// stage's recent p95 latency, paid for by a retry budget of the stage's own.
type HedgePolicy struct {
	// Delay is how long an attempt runs before the next hedge is sent;
	// hedges go out at Delay, 2·Delay, ... after the first attempt.
	// Zero means adaptive: the p95 of the latencies of this stage's last
	// 128 first attempts, at least MinHedgeDelay (10 ms), and
	// DefaultHedgeDelay (100 ms) until 20 calls have been seen. A first
	// attempt that loses to a hedge counts with the time it had run, a
	// lower bound.
	Delay time.Duration
	// MaxHedges is how many copies may be sent besides the first attempt.
	// Zero means 1.
	MaxHedges int
	// Budget caps hedges across calls, as it caps retries (see
	// RetryBudget): each call earns a fraction of a hedge, each hedge
	// spends one retry. Nil means a default budget shared by the calls
	// through this stage; pass the Retry stage's budget to cap both
	// together, or &RetryBudget{Unlimited: true} to switch budgeting off.
	Budget *RetryBudget

	// Telemetry is where the stage reports hedges and budget refusals.
	// The zero value means the global providers.
	Telemetry Telemetry

	sink      telemetry.Sink // nil: Telemetry's
	clock     clock.Clock    // nil: clock.Real
	afterFunc afterFunc      // nil: the clock's AfterFunc
}

// afterFunc runs f in its own goroutine after d unless stopped first.
type afterFunc func(d time.Duration, f func()) stopper

type stopper interface{ Stop() bool }

// validate panics on a field out of range, naming it.
func (p *HedgePolicy) validate() { mustValid(p.check()) }

// check returns a *fieldError for the first field out of range.
func (p *HedgePolicy) check() error {
	if p.Delay < 0 {
		return &fieldError{"HedgePolicy.Delay", "must not be negative, got " + p.Delay.String()}
	}
	if p.MaxHedges < 0 {
		return &fieldError{"HedgePolicy.MaxHedges", "must not be negative, got " + strconv.Itoa(p.MaxHedges)}
	}
	return p.Budget.check()
}

// Hedge cuts tail latency: if the first attempt has not answered within
// the policy's Delay, it sends a copy of the request (a hedge), up to
// MaxHedges copies, and the first acceptable response wins: any response
// but a 5xx or 429, and no transport error. Every other attempt is then
// cancelled and its response drained (up to 64 KiB) and closed. The
// winner's context lives until its body is closed or read to the end.
// If no attempt is acceptable, the caller gets the first attempt's
// outcome, its body unread.
//
// Hedging is not retrying: a first attempt that fails before Delay is
// returned at once, and no hedge is sent after every attempt in flight has
// failed. Only requests net/http deems replayable are hedged (see Retry);
// a POST or PATCH without an idempotency key is sent once. Each hedge gets
// a fresh body from GetBody, and its attempt number in its context for the
// Tracing stage.
//
// The first attempt runs in the caller's goroutine; hedges run in the
// goroutines of their timers, and RoundTrip returns only after they have
// ended. A call answered before Delay starts no goroutine. Hedge panics on
// a negative Delay or MaxHedges.
func Hedge(p HedgePolicy) Middleware {
	p.validate()
	return func(next http.RoundTripper) http.RoundTripper {
		t := &hedgeTransport{next: httpx.OrDefault(next), p: p, maxHedges: p.MaxHedges}
		if t.maxHedges == 0 {
			t.maxHedges = DefaultMaxHedges
		}
		if t.p.Budget == nil {
			t.p.Budget = newBudget(p.clock)
		}
		t.p.Budget.use()
		t.p.clock = clock.Or(p.clock)
		if t.p.afterFunc == nil {
			clk := t.p.clock
			t.p.afterFunc = func(d time.Duration, f func()) stopper { return clk.AfterFunc(d, f) }
		}
		if t.p.sink == nil {
			t.p.sink = p.Telemetry.sink()
		}
		if p.Delay == 0 {
			t.est = new(latencyEstimator)
		}
		return t
	}
}

// WithHedge sets the hedge policy of the standard pipeline and switches
// hedging on in place of retrying. Retry and Hedge are alternatives at the
// same place in the pipeline, since both re-send the same requests on the
// same kind of budget: whichever of WithRetry and WithHedge comes last wins.
// To have both (each retry hedged), build the pipeline with Chain and give
// both policies the same Budget. Without(StageHedge) switches hedging off.
// It panics on a bad policy, as Hedge does.
func WithHedge(p HedgePolicy) Option {
	p.validate()
	return stageOption(StageHedge, func(c *config) { c.hedge = p }, StageRetry)
}

type hedgeTransport struct {
	next      http.RoundTripper
	p         HedgePolicy // defaults filled in
	maxHedges int
	est       *latencyEstimator // nil when Delay is fixed
}

var _ http.RoundTripper = (*hedgeTransport)(nil)

// hedgeCall is the state one call shares between the caller's goroutine,
// which runs the first attempt, and the timers that send the hedges.
type hedgeCall struct {
	t     *hedgeTransport
	req   *http.Request
	delay time.Duration
	body  body.Body // the winner's body wrapper, without another allocation

	// wg counts armed timers and running hedges; RoundTrip waits for it.
	wg sync.WaitGroup

	mu      sync.Mutex
	atts    []cancelFunc   // guarded by mu; one per attempt sent, the first at 0
	buf     [3]cancelFunc  // backing store of atts for up to two hedges
	timer   stopper        // guarded by mu; the armed timer of the next hedge
	pending int            // guarded by mu; attempts sent and not yet finished
	stopped bool           // guarded by mu; no more hedges may be sent
	winner  int            // guarded by mu; the winning attempt, or -1
	wresp   *http.Response // guarded by mu; the winning hedge's response
	resp0   *http.Response // the first attempt's outcome, set by the caller
	err0    error
}

// cancelFunc ends an attempt's context; as a body.Releaser it does so when
// the winner's body is done with, without an allocation.
type cancelFunc context.CancelFunc

func (f cancelFunc) Release() { f() }

func (t *hedgeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = t.p.Budget.onCallOnce(req, t.p.clock.Now())
	if !hedgeable(req) || noHedge(req) {
		return t.next.RoundTrip(req)
	}
	c := &hedgeCall{t: t, req: req, winner: -1, pending: 1}
	c.delay = t.p.Delay
	if t.est != nil {
		c.delay = t.est.delay()
	}
	ctx, cancel := context.WithCancel(req.Context())
	c.atts = append(c.buf[:0], cancelFunc(cancel))
	c.wg.Add(1)
	c.mu.Lock()
	c.timer = t.p.afterFunc(c.delay, c.fire)
	c.mu.Unlock()

	var start time.Duration
	if t.est != nil {
		start = t.p.clock.Now()
	}
	resp, err := httpx.Settle(t.next.RoundTrip(req.WithContext(ctx)))
	if t.est != nil && req.Context().Err() == nil {
		t.est.record(t.p.clock.Now() - start)
	}
	c.resp0, c.err0 = resp, err
	c.finish(0, resp, err)
	c.wg.Wait()
	return c.result()
}

// result returns the call's outcome once every attempt has ended. The
// WaitGroup's Wait orders it after every write under mu.
func (c *hedgeCall) result() (*http.Response, error) {
	if w := c.winner; w > 0 {
		httpx.Discard(c.resp0)
		c.atts[0]()
		body.TrackInto(c.wresp, &c.body, c.atts[w])
		return c.wresp, nil
	}
	if c.err0 != nil {
		c.atts[0]()
		return nil, c.err0
	}
	body.TrackInto(c.resp0, &c.body, c.atts[0])
	return c.resp0, nil
}

// finish records the outcome of attempt i and reports whether it won. A
// winner cancels every other attempt; once nothing is in flight or a
// winner is found, no more hedges are sent.
func (c *hedgeCall) finish(i int, resp *http.Response, err error) (won bool) {
	// A copy answered 409 under the call's key is a server saying the first
	// copy is still in flight (Stripe's idempotency_error): never an answer.
	ok := acceptable(resp, err) && (i == 0 || resp.StatusCode != http.StatusConflict)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending--
	if c.winner < 0 && ok {
		c.winner, won = i, true
		if i > 0 {
			c.wresp = resp
		}
		for j, cancel := range c.atts {
			if j != i {
				cancel()
			}
		}
	}
	if won || c.pending == 0 {
		c.stopLocked()
	}
	return won
}

// stopLocked ends the sending of hedges; it requires mu held.
func (c *hedgeCall) stopLocked() {
	c.stopped = true
	if c.timer != nil && c.timer.Stop() {
		c.wg.Done() // the timer's fire will not run
	}
	c.timer = nil
}

// fire sends a hedge, in the goroutine of the timer that calls it.
func (c *hedgeCall) fire() {
	defer c.wg.Done()
	ctx := c.req.Context()
	c.mu.Lock()
	c.timer = nil
	n := len(c.atts) // attempts sent so far; this hedge is attempt n+1
	stop := c.stopped || ctx.Err() != nil
	c.mu.Unlock()
	if stop {
		return
	}
	ev := telemetry.Event{Kind: telemetry.Hedge, Attempt: n, Delay: c.delay, Request: c.req}
	if !c.t.p.Budget.tryRetry() {
		c.stop()
		ev.Kind = telemetry.BudgetExhausted
		telemetry.Emit(ctx, c.t.p.sink, ev)
		return
	}
	// GetBody is the caller's code: run it outside the lock.
	hreq, err := httpx.Rewind(c.req)
	if err != nil {
		c.stop()
		return
	}
	hctx, cancel := context.WithCancel(telemetry.WithAttempt(ctx, n+1))
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		cancel()
		if hreq != c.req {
			httpx.CloseRequestBody(hreq)
		}
		return
	}
	i := len(c.atts)
	c.atts = append(c.atts, cancelFunc(cancel))
	c.pending++
	if len(c.atts) <= c.t.maxHedges {
		c.wg.Add(1)
		c.timer = c.t.p.afterFunc(c.delay, c.fire)
	}
	c.mu.Unlock()

	telemetry.Emit(ctx, c.t.p.sink, ev)
	resp, err := httpx.Settle(c.t.next.RoundTrip(hreq.WithContext(hctx)))
	if !c.finish(i, resp, err) {
		httpx.Discard(resp)
		cancel()
	}
}

func (c *hedgeCall) stop() {
	c.mu.Lock()
	c.stopLocked()
	c.mu.Unlock()
}

// hedgeable reports whether req may be sent in copies: an idempotent method,
// or a key the servers are known to deduplicate by, and a body that can be
// rewound. A key the pipeline made for servers that may ignore it is not
// enough: the copies could be two writes.
func hedgeable(req *http.Request) bool {
	return httpx.Rewindable(req) && (httpx.Idempotent(req.Method) || httpx.KeyOf(req) == httpx.TrustedKey)
}

// acceptable reports whether an outcome ends the call: a response that is
// not a 5xx or 429.
func acceptable(resp *http.Response, err error) bool {
	return err == nil && resp != nil && !httpx.FailureStatus(resp.StatusCode)
}

// CloseIdleConnections forwards to the next transport.
func (t *hedgeTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }

// Adaptive delay: the p95 of the last hedgeSamples first-attempt latencies,
// recomputed every hedgeRecompute samples so that reading it costs one
// atomic load and recording one atomic add and store.
const (
	hedgeSamples    = 128
	hedgeMinSamples = 20
	hedgeRecompute  = 8
	// hedgeTop is how many of the largest samples the p95 of a full ring
	// looks past: 5 % of 128, rounded up, plus the p95 itself.
	hedgeTop = (hedgeSamples+19)/20 + 1
)

// latencyEstimator keeps recent latencies in a lock-free ring. Concurrent
// writers may overwrite each other's slots or race a recomputation; the
// estimate stays a p95 of recent samples, which is all a hedge delay needs.
type latencyEstimator struct {
	n    atomic.Uint64
	p95  atomic.Int64 // 0 until hedgeMinSamples samples
	ring [hedgeSamples]atomic.Int64
}

func (e *latencyEstimator) record(d time.Duration) {
	i := e.n.Add(1)
	e.ring[(i-1)%hedgeSamples].Store(int64(d))
	if i == hedgeMinSamples || (i > hedgeMinSamples && i%hedgeRecompute == 0) {
		e.p95.Store(int64(max(e.compute(int(min(i, hedgeSamples))), MinHedgeDelay)))
	}
}

// delay is the hedge delay to use now.
func (e *latencyEstimator) delay() time.Duration {
	if p := e.p95.Load(); p != 0 {
		return time.Duration(p)
	}
	return DefaultHedgeDelay
}

// compute returns the nearest-rank p95 of the first n slots: the k-th
// largest sample, k = n - ceil(0.95·n) + 1, found by keeping the k largest
// in a small sorted array.
func (e *latencyEstimator) compute(n int) time.Duration {
	k := n - (95*n+99)/100 + 1
	var top [hedgeTop]int64 // descending; top[:m] filled
	m := 0
	for i := range n {
		v := e.ring[i].Load()
		if m == k && v <= top[k-1] {
			continue
		}
		j := min(m, k-1) // v replaces the smallest kept, or fills a slot
		for j > 0 && top[j-1] < v {
			top[j] = top[j-1]
			j--
		}
		top[j] = v
		m = min(m+1, k)
	}
	return time.Duration(top[k-1])
}
