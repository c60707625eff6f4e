package resilient

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// CallPolicy is one call's overrides of the pipeline's settings, carried
// by the request's context (WithCallPolicy). A zero field means the
// pipeline's setting. The stages read it only where they already make the
// decision it changes:
//
//   - MaxAttempts: the Retry stage (and Hedge, where 1 means no hedge).
//   - AttemptTimeout, TotalTimeout: the timeouts of the standard pipeline
//     (NewClient, NewTransport), which knows which Timeout is which. In a
//     pipeline built with Chain a Timeout stage cannot tell, and ignores
//     them. A timeout switched off in the pipeline stays off.
//   - NoFallback, NoHedge: the Fallback and Hedge stages.
//
// A call's settings may be looser than the pipeline's as well as tighter;
// but no CallPolicy adds a stage: a pipeline built without retries (no
// Retry stage, or MaxAttempts 1) sends one attempt whatever MaxAttempts
// says.
type CallPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 means no
	// retry and no hedge for this call. Zero means the pipeline's.
	MaxAttempts int
	// AttemptTimeout bounds each attempt of this call. Zero means the
	// pipeline's.
	AttemptTimeout time.Duration
	// TotalTimeout bounds the whole call, retries and waits included. Zero
	// means the pipeline's.
	TotalTimeout time.Duration
	// NoFallback returns this call's failure as it is, without calling
	// the pipeline's fallback.
	NoFallback bool
	// NoHedge sends this call without hedges.
	NoHedge bool
}

// callPolicyKey is the context key of a *CallPolicy.
type callPolicyKey struct{}

// callPoliciesUsed is set by the first WithCallPolicy in the process. Until
// then the stages skip the context lookup: a context.Value walks the whole
// chain of contexts when the key is absent, which is every call of a
// program that never sets a CallPolicy. One atomic load is what such a
// program pays (BenchmarkCallPolicy).
var callPoliciesUsed atomic.Bool

// WithCallPolicy returns a copy of ctx that carries p: a request sent
// with it (http.NewRequestWithContext, req.WithContext) runs through the
// pipeline with p's overrides. It panics on a negative field, as a policy
// does.
//
//	ctx := resilient.WithCallPolicy(ctx, resilient.CallPolicy{MaxAttempts: 1})
//	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
func WithCallPolicy(ctx context.Context, p CallPolicy) context.Context {
	mustValid(p.check())
	if !callPoliciesUsed.Load() {
		callPoliciesUsed.Store(true)
	}
	return context.WithValue(ctx, callPolicyKey{}, &p)
}

func (p *CallPolicy) check() error {
	if p.MaxAttempts < 0 {
		return &fieldError{"CallPolicy.MaxAttempts", "must not be negative, got " + strconv.Itoa(p.MaxAttempts)}
	}
	return firstError(
		notNegative("CallPolicy.AttemptTimeout", p.AttemptTimeout),
		notNegative("CallPolicy.TotalTimeout", p.TotalTimeout),
	)
}

// callPolicyOf returns the CallPolicy ctx carries, or nil. It inlines to
// one atomic load until a CallPolicy is made.
func callPolicyOf(ctx context.Context) *CallPolicy {
	if !callPoliciesUsed.Load() {
		return nil
	}
	return lookupCallPolicy(ctx)
}

// lookupCallPolicy is kept out of line so that callPolicyOf inlines.
//
//go:noinline
func lookupCallPolicy(ctx context.Context) *CallPolicy {
	p, _ := ctx.Value(callPolicyKey{}).(*CallPolicy)
	return p
}

// callTimeout says which of a CallPolicy's timeouts a Timeout stage of the
// standard pipeline is; zero: neither (a Timeout built with Chain).
type callTimeout uint8

const (
	callTotal callTimeout = iota + 1
	callAttempt
)

// timeoutStage is Timeout(d) for the standard pipeline, whose d a
// CallPolicy's timeout of kind k replaces.
func timeoutStage(d time.Duration, k callTimeout) Middleware {
	m := Timeout(d)
	return func(next http.RoundTripper) http.RoundTripper {
		t := m(next).(*timeoutTransport)
		t.call = k
		return t
	}
}

// timeout is t's duration for req's call. Small enough to inline, so a
// Timeout without a call's policy pays two loads.
func (t *timeoutTransport) timeout(req *http.Request) time.Duration {
	if t.call == 0 || !callPoliciesUsed.Load() {
		return t.d
	}
	return t.timeoutFor(req)
}

func (t *timeoutTransport) timeoutFor(req *http.Request) time.Duration {
	p := lookupCallPolicy(req.Context())
	if p == nil {
		return t.d
	}
	if t.call == callTotal {
		return cmp.Or(p.TotalTimeout, t.d)
	}
	return cmp.Or(p.AttemptTimeout, t.d)
}

// roundTripCall is RoundTrip for a call with a CallPolicy: a copy of t
// with the call's attempts and total timeout.
func (t *retryTransport) roundTripCall(req *http.Request, p *CallPolicy) (*http.Response, error) {
	c := *t
	c.maxAttempts = cmp.Or(p.MaxAttempts, c.maxAttempts)
	if c.total == 0 || (p.TotalTimeout == 0 && p.AttemptTimeout == 0) {
		return c.roundTrip(req)
	}
	// The fused total (see retryStage) trusted the pipeline's attempt
	// timeout to bound the first attempt within the total; this call's
	// own timeouts need not, so the whole call is bounded as a Timeout
	// stage above would.
	total := cmp.Or(p.TotalTimeout, c.total)
	c.total = 0
	tt := &timeoutTransport{next: callFunc(c.roundTrip), d: total, clock: c.p.clock}
	return tt.RoundTrip(req)
}

// callFunc is a func as an http.RoundTripper.
type callFunc func(*http.Request) (*http.Response, error)

func (f callFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// noFallback reports whether req's call asks to go without a fallback.
func noFallback(req *http.Request) bool {
	p := callPolicyOf(req.Context())
	return p != nil && p.NoFallback
}

// noHedge reports whether req's call asks to go without hedges.
func noHedge(req *http.Request) bool {
	p := callPolicyOf(req.Context())
	return p != nil && (p.NoHedge || p.MaxAttempts == 1)
}
