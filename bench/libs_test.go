package bench

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	hystrixgo "github.com/afex/hystrix-go/hystrix"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/gojek/heimdall/v7"
	"github.com/gojek/heimdall/v7/httpclient"
	"github.com/gojek/heimdall/v7/hystrix"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/resilient-go/resilient"
)

// The one configuration every library gets, as far as its API allows; the
// values are resilient's defaults (DESIGN.md). README.md lists what each
// peer cannot express.
const (
	maxAttempts    = 3
	initialDelay   = 100 * time.Millisecond
	maxDelay       = 5 * time.Second
	totalTimeout   = 30 * time.Second
	attemptTimeout = 10 * time.Second
	breakerTrip    = 5 // consecutive failures
	breakerOpen    = 5 * time.Second
	bulkheadSize   = 256
)

// cfg is what a benchmark changes from the standard configuration. The
// zero value is the standard configuration.
type cfg struct {
	// fastBackoff sets every backoff delay to the smallest the library
	// allows (1 ns, or 0 where it counts in milliseconds), so that a failed
	// call measures the library, not its sleep.
	fastBackoff bool
	// noBreaker leaves the circuit breaker out (and, for heimdall, hystrix
	// with it, which also drops its bulkhead).
	noBreaker bool
	// noBudget switches retry budgets off, so that every failed call makes
	// exactly maxAttempts attempts.
	noBudget bool
	// breakerOnly builds the breaker alone, with nothing around it.
	breakerOnly bool
	// hedge, when positive, hedges after this delay (one hedge), in the
	// libraries that can.
	hedge time.Duration
}

// lib is one library under test. wrap builds it around base configured by
// c, or returns nil if the library cannot be configured so (the row is then
// skipped).
type lib struct {
	name string
	wrap func(base http.RoundTripper, c cfg) http.RoundTripper
}

var (
	libRaw       = lib{"raw", func(base http.RoundTripper, _ cfg) http.RoundTripper { return base }}
	libResilient = lib{"resilient", newResilient}

	libFailsafe      = lib{"failsafe-go", newFailsafe}
	libRetryablehttp = lib{"retryablehttp", newRetryablehttp}
	libHeimdall      = lib{"heimdall", newHeimdall}
)

// peers are the three other libraries, in table order.
var peers = []lib{libFailsafe, libRetryablehttp, libHeimdall}

// failure is what counts as a failed attempt for a breaker: an error, a
// 5xx or a 429, as in resilient's breaker.
func failure(resp *http.Response, err error) bool {
	return err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// newFailsafe composes failsafe-go's policies in resilient's stage order,
// outermost first: total timeout, retry, hedge, bulkhead, breaker, attempt
// timeout.
func newFailsafe(base http.RoundTripper, c cfg) http.RoundTripper {
	breaker := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(failure).
		WithFailureThreshold(breakerTrip).
		WithDelay(breakerOpen).
		Build()
	if c.breakerOnly {
		return failsafehttp.NewRoundTripper(base, breaker)
	}

	// WithBackoff(d/2, max/2) with a jitter factor of 1 draws each delay
	// uniformly from [0, min(max, d·2^n)]: full jitter, as resilient does.
	rb := failsafehttp.NewRetryPolicyBuilder().
		WithMaxAttempts(maxAttempts).
		WithBackoff(initialDelay/2, maxDelay/2).
		WithJitterFactor(1).
		AbortOnErrors(circuitbreaker.ErrOpen, bulkhead.ErrFull).
		ReturnLastFailure()
	if c.fastBackoff {
		rb = rb.WithBackoff(time.Nanosecond, time.Nanosecond)
	}
	if !c.noBudget {
		rb = rb.WithBudget(budget.New())
	}

	policies := []failsafe.Policy[*http.Response]{
		timeout.New[*http.Response](totalTimeout),
		rb.Build(),
	}
	if c.hedge > 0 {
		policies = append(policies, hedgepolicy.NewBuilderWithDelay[*http.Response](c.hedge).WithMaxHedges(1).Build())
	}
	policies = append(policies, bulkhead.New[*http.Response](bulkheadSize))
	if !c.noBreaker {
		policies = append(policies, breaker)
	}
	policies = append(policies, timeout.New[*http.Response](attemptTimeout))
	return failsafehttp.NewRoundTripper(base, policies...)
}

// newRetryablehttp uses go-retryablehttp's own RoundTripper. It has no
// breaker, bulkhead, hedging or total timeout.
func newRetryablehttp(base http.RoundTripper, c cfg) http.RoundTripper {
	if c.breakerOnly {
		return nil
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: base, Timeout: attemptTimeout}
	rc.Logger = nil // its default logs every request to stderr
	rc.RetryMax = maxAttempts - 1
	rc.RetryWaitMin, rc.RetryWaitMax = initialDelay, maxDelay
	if c.fastBackoff {
		rc.RetryWaitMin, rc.RetryWaitMax = time.Nanosecond, time.Nanosecond
	}
	rc.Backoff = fullJitter
	// Give the caller the last response, as resilient does, rather than
	// an error that drops it.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &retryablehttp.RoundTripper{Client: rc}
}

// fullJitter is resilient's backoff in go-retryablehttp's Backoff shape:
// uniform in [0, min(max, min·2^n)], or the server's Retry-After.
func fullJitter(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
	if resp != nil && resp.Header.Get("Retry-After") != "" {
		return retryablehttp.DefaultBackoff(lo, hi, n, resp)
	}
	d := hi
	if n < 62 && lo<<n > 0 && lo<<n < hi {
		d = lo << n
	}
	return rand.N(d + 1)
}

// hystrixSeq makes hystrix command names unique: hystrix keeps its
// breakers in a global registry by name, and each benchmark wants a fresh
// one.
var hystrixSeq atomic.Int64

// newHeimdall uses heimdall's hystrix client (retry, breaker, bulkhead,
// per-attempt timeout) or, without a breaker, its plain retrying client.
// Neither is a RoundTripper; doerTransport adapts them.
func newHeimdall(base http.RoundTripper, c cfg) http.RoundTripper {
	doer := &http.Client{Transport: base, Timeout: attemptTimeout}
	// heimdall counts backoff in whole milliseconds and adds up to the
	// jitter on top of the exponential delay: no full jitter.
	backoff := heimdall.NewExponentialBackoff(initialDelay, maxDelay, 2, initialDelay)
	if c.fastBackoff {
		backoff = heimdall.NewExponentialBackoff(0, 0, 2, 0)
	}
	retrier := heimdall.NewRetrier(backoff)
	if c.noBreaker {
		return doerTransport{httpclient.NewClient(
			httpclient.WithHTTPClient(doer),
			httpclient.WithRetryCount(maxAttempts-1),
			httpclient.WithRetrier(retrier),
		)}
	}
	retries := maxAttempts - 1
	if c.breakerOnly {
		// heimdall sleeps the backoff after a failed last attempt too.
		retries, retrier = 0, heimdall.NewNoRetrier()
	}
	return doerTransport{hystrix.NewClient(
		hystrix.WithCommandName("bench-"+strconv.FormatInt(hystrixSeq.Add(1), 10)),
		hystrix.WithHTTPClient(doer),
		hystrix.WithHystrixTimeout(attemptTimeout),
		hystrix.WithMaxConcurrentRequests(bulkheadSize),
		// hystrix trips on an error percentage over a 10 s window once a
		// minimum volume is reached: 50 % of at least 5 is the nearest to
		// "5 in a row" (in a total outage both trip at the 5th failure).
		hystrix.WithRequestVolumeThreshold(breakerTrip),
		hystrix.WithErrorPercentThreshold(50),
		hystrix.WithSleepWindow(int(breakerOpen/time.Millisecond)),
		hystrix.WithRetryCount(retries),
		hystrix.WithRetrier(retrier),
	)}
}

// doerTransport makes a heimdall client usable where a RoundTripper is.
type doerTransport struct{ heimdall.Doer }

func (d doerTransport) RoundTrip(req *http.Request) (*http.Response, error) { return d.Do(req) }

// isOpen reports whether err is a breaker's rejection, in any library.
func isOpen(err error) bool {
	return errors.Is(err, resilient.ErrCircuitOpen) ||
		errors.Is(err, circuitbreaker.ErrOpen) ||
		errors.Is(err, hystrixgo.ErrCircuitOpen)
}
