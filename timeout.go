package resilient

import (
	"net/http"
	"time"

	"github.com/resilient-go/resilient/internal/body"
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
		return &timeoutTransport{next: httpx.OrDefault(next), d: d}
	}
}

type timeoutTransport struct {
	next http.RoundTripper
	d    time.Duration
}

var _ http.RoundTripper = (*timeoutTransport)(nil)

// timeoutCall is the per-call state: the context handed down, and the body
// wrapper that ends it, in one allocation.
type timeoutCall struct {
	ctx   deadline.Context
	body  body.Body
	after time.Duration
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	end := clock.Add(clock.Now(), t.d)
	if pd, ok := deadline.DeadlineOf(parent); ok && end >= pd {
		// The caller's deadline is sooner, and net/http already honours it.
		return t.next.RoundTrip(req)
	}
	c := &timeoutCall{after: t.d}
	c.ctx.Init(parent, end, nil)
	resp, err := t.next.RoundTrip(req.WithContext(&c.ctx))
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		err = c.MapReadError(err)
		c.ctx.Release()
		return nil, err
	}
	body.TrackInto(resp, &c.body, c)
	return resp, nil
}

// Release ends the call's context; body.Body calls it once.
func (c *timeoutCall) Release() { c.ctx.Release() }

// MapReadError turns an error caused by this stage's deadline into a
// *TimeoutError; other errors pass through.
func (c *timeoutCall) MapReadError(err error) error {
	if !c.ctx.Expired() {
		return err
	}
	// An inner timeout expired with ours (it was clipped to our deadline):
	// report the outer one, which is what ran out.
	if te, ok := err.(*TimeoutError); ok {
		err = te.Err
	}
	return &TimeoutError{After: c.after, Err: err}
}

// CloseIdleConnections forwards to the next transport.
func (t *timeoutTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
