package resilient

import (
	"context"
	"errors"
	"time"
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
}

func (e *TimeoutError) Error() string {
	msg := "resilient: timed out after " + e.After.String()
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
