// Package deadline is a context with a deadline whose timer is armed lazily.
//
// context.WithDeadline starts a timer, allocates a done channel and a cancel
// closure up front, on every call. Most calls finish long before their
// deadline, and a stage that stacks two timeouts (total and per attempt)
// would pay twice. A Context creates its channel and timer only when
// somebody asks for Done; until then Err checks the clock itself. Both paths
// report the same outcome, so callers cannot tell the difference.
//
// Times are offsets on the monotonic clock from clock's origin, read from
// the Context's clock.Clock, so that tests can run a Context on fake time.
package deadline

import (
	"context"
	"sync"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
)

// Offset is t as an offset comparable with clock.Now (saturating for times
// centuries away). A t without a monotonic reading (from time.Date, a
// parsed header, Round(0), ...) is measured on today's wall clock, as
// time.Until does: the wall clock may have moved since origin.
func Offset(t time.Time) time.Duration {
	if t == t.Round(0) {
		u := time.Until(t)
		if u > 0 {
			return clock.Add(clock.Now(), u)
		}
		return clock.Now() + u
	}
	return clock.Since(t)
}

// Context is a context.Context that ends at a deadline, when its parent
// ends, or when Release is called. Safe for concurrent use.
type Context struct {
	parent context.Context
	end    time.Duration // the deadline, as an offset from clk.Now
	clk    clock.Clock

	expirer Expirer // told when the deadline passes; set before use

	mu         sync.Mutex
	done       chan struct{} // guarded by mu; nil until Done is called
	err        error         // guarded by mu
	own        bool          // guarded by mu: c ended at its deadline while its parent was live
	timer      clock.Timer   // guarded by mu
	stopParent func() bool   // guarded by mu
}

// Init sets c up to end at end (an offset from clk.Now) or when parent
// ends; a nil clk means clock.Real. It is Init rather than a constructor so
// that callers can embed a Context in a per-call struct. end must not be
// after parent's own deadline.
func (c *Context) Init(parent context.Context, end time.Duration, clk clock.Clock) {
	c.parent = parent
	c.end = end
	c.clk = clock.Or(clk)
}

// Deadline reports the deadline given to Init, with a wall reading taken
// now, so that it is right even if the wall clock has moved since origin.
func (c *Context) Deadline() (time.Time, bool) {
	now := time.Now()
	return now.Add(c.end - c.clk.Now()), true
}

// DeadlineOf is ctx's deadline as an offset on clk (nil: clock.Real), and
// whether it has one; a *Context on the same clock answers without reading
// it. On another clock (a test's fake), the time left until the deadline
// is counted from clk's now.
func DeadlineOf(ctx context.Context, clk clock.Clock) (time.Duration, bool) {
	clk = clock.Or(clk)
	if c, ok := ctx.(*Context); ok && c.clk == clk {
		return c.end, true
	}
	d, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	if clk == clock.Real {
		return Offset(d), true
	}
	return clock.Add(clk.Now(), max(time.Until(d), 0)), true
}

// Expirer is told when a Context's own deadline passes (its timer fired:
// something waited on it).
type Expirer interface{ OnExpire() }

// SetExpirer makes c tell e when its deadline passes. Call it before c is
// handed to anyone.
func (c *Context) SetExpirer(e Expirer) { c.expirer = e }

// Value delegates to the parent.
func (c *Context) Value(key any) any { return c.parent.Value(key) }

// Done returns a channel closed when c ends. The first call arms the timer.
func (c *Context) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err != nil {
		close(c.done)
		return c.done
	}
	if err := c.parent.Err(); err != nil {
		c.endLocked(err)
		return c.done
	}
	wait := c.end - c.clk.Now()
	if wait <= 0 {
		c.expireLocked()
		return c.done
	}
	c.timer = c.clk.AfterFunc(wait, c.expire)
	// An ancestor that is itself a *Context ends no earlier than c (its
	// deadline is not sooner, and it is released only after c), so skip it
	// rather than arm its timer too.
	watch := c.parent
	for {
		p, ok := watch.(*Context)
		if !ok {
			break
		}
		watch = p.parent
	}
	if watch.Done() != nil {
		c.stopParent = context.AfterFunc(watch, c.parentDone)
	}
	return c.done
}

// Err reports why c ended, or nil. It checks the clock itself, so a context
// whose Done was never asked for still ends on time. One clock read covers
// the whole nest: an ancestor *Context's deadline is never before c's.
func (c *Context) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if err := ancestorErr(c.parent); err != nil {
		c.endLocked(err)
	} else if c.clk.Now() >= c.end {
		c.expireLocked()
	}
	return c.err
}

// ancestorErr is the error of the nearest ended ancestor, without reading
// the clock for ancestors that are *Context.
func ancestorErr(p context.Context) error {
	for {
		pc, ok := p.(*Context)
		if !ok {
			return p.Err()
		}
		pc.mu.Lock()
		err := pc.err
		pc.mu.Unlock()
		if err != nil {
			return err
		}
		p = pc.parent
	}
}

// Expired reports whether c ended because its own deadline passed while
// its parent was still live: the timeout belongs to whoever called Init.
// It is decided when c ends, so that what happens to the parent later (a
// body abandoned at c's deadline releases the stages above) cannot
// disown it.
func (c *Context) Expired() bool {
	c.Err() // ends c now if its deadline has passed
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.own
}

// Release ends c with context.Canceled if it has not ended yet, and frees
// its timer. Safe to call more than once.
func (c *Context) Release() {
	c.mu.Lock()
	if c.err == nil {
		c.endLocked(context.Canceled)
	}
	c.mu.Unlock()
}

func (c *Context) expire() {
	c.mu.Lock()
	expired := c.err == nil
	if expired {
		c.expireLocked()
	}
	c.mu.Unlock()
	if expired && c.expirer != nil {
		c.expirer.OnExpire()
	}
}

func (c *Context) parentDone() {
	c.mu.Lock()
	if c.err == nil {
		err := c.parent.Err()
		if err == nil {
			err = context.Canceled
		}
		c.endLocked(err)
	}
	c.mu.Unlock()
}

// expireLocked ends c at its own deadline. It requires mu held, c.err ==
// nil, and the parent seen live: an ancestor that ended first is c's end.
func (c *Context) expireLocked() {
	c.own = ancestorErr(c.parent) == nil
	c.endLocked(context.DeadlineExceeded)
}

// endLocked requires mu held and c.err == nil.
func (c *Context) endLocked(err error) {
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}

// String names the context for debugging, as the standard ones do.
func (c *Context) String() string {
	d, _ := c.Deadline()
	return "resilient.deadline(" + d.String() + ")"
}
