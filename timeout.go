package resilient

import (
	"net/http"
	"time"

	"github.com/resilient-go/resilient/internal/bounded"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/deadline"
	"github.com/resilient-go/resilient/internal/httpx"
)

// Timeout bounds each call through it to d, including the read of the
// response body: a body that stalls fails with a *TimeoutError, and a body
// read before the deadline reads completely, however long the caller waits
// within it. Past the deadline a read fails with a *TimeoutError even if
// the bytes had arrived (net/http drops the connection; only what it had
// buffered comes first): read the body before the deadline, or give the
// stage room for the read. Where the stage sits makes it a total timeout
// (outside Retry) or a per-attempt one (inside). A caller's own sooner
// deadline wins.
//
// The call's context ends when the body is closed or read to EOF, or when
// the call fails; never earlier. The timer behind it is started only if
// something below waits on the context (net/http does), so a call that ends
// without waiting costs no timer.
//
// Timeout panics if d is not positive: a zero timeout is a configuration
// mistake, not a way to switch the stage off (leave the stage out instead).
func Timeout(d time.Duration) Middleware {
	if d <= 0 {
		panic("resilient: Timeout needs a positive duration, got " + d.String())
	}
	return func(next http.RoundTripper) http.RoundTripper {
		return &timeoutTransport{next: httpx.OrDefault(next), d: d, clock: clock.Real}
	}
}

type timeoutTransport struct {
	next  http.RoundTripper
	d     time.Duration
	clock clock.Clock
	call  callTimeout // which CallPolicy timeout replaces d; zero: none
}

var _ http.RoundTripper = (*timeoutTransport)(nil)

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	d := t.timeout(req)
	end := clock.Add(t.clock.Now(), d)
	if pd, ok := deadline.DeadlineOf(req.Context(), t.clock); ok && end >= pd {
		// The caller's deadline is sooner, and net/http already honours it.
		return t.next.RoundTrip(req)
	}
	return bounded.Run(req, end, d, t.clock, t.call, t.next.RoundTrip)
}

// Expired is the error of a call whose Timeout, of kind k, passed. An
// inner timeout that expired with ours (it was clipped to our deadline) is
// replaced: ours is what ran out.
func (k callTimeout) Expired(req *http.Request, after time.Duration, inBody bool, err error) error {
	if te, ok := err.(*TimeoutError); ok {
		err = te.Err
	}
	e := &TimeoutError{After: after, Err: err, InBody: inBody}
	if req.URL != nil {
		e.Authority = httpx.AuthorityOf(req).String()
	}
	switch k {
	case callTotal:
		e.Which = "total"
	case callAttempt:
		e.Which = "attempt"
	}
	return e
}

// CloseIdleConnections forwards to the next transport.
func (t *timeoutTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
