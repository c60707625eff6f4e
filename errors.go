package resilient

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/resilient-go/resilient/internal/httpx"
)

// ErrCircuitOpen is the errors.Is target for a call a circuit breaker
// rejected without sending it.
var ErrCircuitOpen = errors.New("resilient: circuit open")

// ErrBulkheadFull is the errors.Is target for a call a bulkhead rejected
// because its pool had no free slot within MaxWait.
var ErrBulkheadFull = errors.New("resilient: bulkhead full")

// ErrRateLimited is the errors.Is target for a call a RateLimit stage
// refused without sending it: over the rate, or during a host's cool-down,
// for longer than the call could wait.
var ErrRateLimited = errors.New("resilient: rate limited")

// TimeoutError reports that a Timeout stage's deadline passed before the
// call, or its body read, finished. It matches
// errors.Is(err, context.DeadlineExceeded), and its Timeout method makes
// *url.Error and net.Error report a timeout.
type TimeoutError struct {
	// After is the stage's duration.
	After time.Duration
	// Err is what the transport returned when the deadline passed.
	Err error
	// Which is "attempt" or "total" for the standard pipeline's timeouts,
	// and empty for a Timeout stage built with Chain.
	Which string
	// InBody says the response headers had arrived and the deadline
	// passed while the body was read; false: while waiting for them.
	InBody bool
	// Authority is the call's scheme://host:port.
	Authority string
}

func (e *TimeoutError) Error() string {
	msg := "resilient: "
	if e.Which != "" {
		msg += e.Which + " "
	}
	msg += "timed out after " + e.After.String()
	if e.InBody {
		msg += " reading the response body"
	} else {
		msg += " waiting for the response"
	}
	if e.Authority != "" {
		msg += " of " + e.Authority
	}
	if e.Err != nil && !errors.Is(e.Err, context.DeadlineExceeded) {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Timeout reports true: this is a timeout in the net.Error sense.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true, for code that still asks the deprecated question.
func (e *TimeoutError) Temporary() bool { return true }

// Is matches context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Unwrap returns the transport's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// RequestError is the error of a call that net/http refuses before it
// touches the network: an invalid method, header name or value, an
// unsupported scheme, no host, a body whose length does not match
// ContentLength, or a body reader that failed. It is the caller's mistake,
// so it is neither retried nor counted against the dependency by a
// breaker. Err is what the transport returned.
type RequestError struct {
	// Reason says what is wrong with the request.
	Reason string
	// Err is the transport's error.
	Err error
}

func (e *RequestError) Error() string {
	msg := "resilient: invalid request: " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the transport's error.
func (e *RequestError) Unwrap() error { return e.Err }

// asRequestError returns err as a *RequestError, and true, when the call
// failed because of the request itself. Only failed calls ask, so a valid
// request pays nothing for the check.
func asRequestError(req *http.Request, err error) (error, bool) {
	switch err.(type) {
	case *CircuitOpenError, *BulkheadFullError, *RateLimitedError, *TimeoutError:
		return err, false // our own refusals: no request to validate
	}
	var re *RequestError
	if errors.As(err, &re) {
		return err, true
	}
	if why := httpx.Invalid(req); why != "" {
		return &RequestError{Reason: why, Err: err}, true
	}
	return err, false
}
