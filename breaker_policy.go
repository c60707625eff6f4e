package resilient

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

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
	// lets a probe through. A trip waits FirstOpenTimeout; after a failed
	// probe it waits a quarter of the outage so far (since the trip), at
	// least FirstOpenTimeout and at most OpenTimeout, so that a host back
	// from an outage waits at most a quarter of it more; closing starts
	// over. Up
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
