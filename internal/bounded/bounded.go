// Package bounded runs a call under a deadline that also covers the read of
// its response body: the core shared by the Timeout stage and by Retry when
// it enforces the pipeline's total timeout itself.
package bounded

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/body"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/deadline"
)

// Expired makes the error a call of req reports when its deadline passed:
// after is the bound, inBody whether the response headers had come (the
// body was being read), err what the transport returned then. An
// interface rather than a func, so that a small value can be one without
// an allocation per call.
type Expired interface {
	Expired(req *http.Request, after time.Duration, inBody bool, err error) error
}

// call is the per-call state: the context handed down, and the body wrapper
// that ends it, in one allocation.
type call struct {
	req     *http.Request
	ctx     deadline.Context
	body    body.Body
	after   time.Duration
	expired Expired
	held    atomic.Pointer[body.Body] // the wrapper the call's hold joined
}

// Run sends req through send with a context that ends at end (an offset on
// clk) or when req's own context does, and keeps it alive until the
// response body is closed or read to EOF. An error caused by that deadline,
// while sending or reading the body, becomes expired(after, err).
func Run(req *http.Request, end, after time.Duration, clk clock.Clock, expired Expired,
	send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	c := &call{req: req, after: after, expired: expired}
	c.ctx.Init(req.Context(), end, clk)
	c.ctx.SetExpirer(c)
	resp, err := send(req.WithContext(&c.ctx))
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		err = c.mapError(err, false)
		c.ctx.Release()
		return nil, err
	}
	c.held.Store(body.TrackInto(resp, &c.body, c))
	return resp, nil
}

// OnExpire gives back what the stages hold for a response whose body the
// caller never closed, once the deadline has passed: nothing more can be
// read from it, and a bulkhead slot held for it would otherwise be lost
// for good.
func (c *call) OnExpire() {
	if b := c.held.Load(); b != nil {
		b.Abandon()
	}
}

// Release ends the call's context; body.Body calls it once.
func (c *call) Release() { c.ctx.Release() }

// MapReadError turns an error caused by this call's deadline into the
// Expired error; other errors pass through.
func (c *call) MapReadError(err error) error { return c.mapError(err, true) }

func (c *call) mapError(err error, inBody bool) error {
	if !c.ctx.Expired() {
		return err
	}
	return c.expired.Expired(c.req, c.after, inBody, err)
}
