// Package rolling counts events over a rolling window without a lock, for
// the breaker's failure ratio: the hot path of every call through a closed
// breaker, where a mutex would make goroutines queue.
package rolling

import "sync/atomic"

// Buckets is how many buckets a window has.
const Buckets = 10

// Counter counts events over the last Buckets bucket periods. One counter
// per bucket is reset by the first Add of a new period; an Add racing that
// reset may be lost: the count is a rate, not a ledger. Times are in
// nanoseconds on any monotonic scale. The zero value counts forever.
type Counter struct {
	// Period is the bucket length in nanoseconds; 0 counts forever.
	Period  int64
	buckets [Buckets]struct {
		slot atomic.Int64 // the bucket period this counter is for
		n    atomic.Int64
	}
}

func (c *Counter) slot(now int64) int64 {
	if c.Period <= 0 {
		return 0
	}
	return now / c.Period
}

// Add counts one event at now.
func (c *Counter) Add(now int64) {
	s := c.slot(now)
	bk := &c.buckets[s%Buckets]
	if old := bk.slot.Load(); old != s && bk.slot.CompareAndSwap(old, s) {
		bk.n.Store(0)
	}
	bk.n.Add(1)
}

// Sum returns the events counted in the window ending at now.
func (c *Counter) Sum(now int64) int64 {
	s := c.slot(now)
	var n int64
	for i := range c.buckets {
		bk := &c.buckets[i]
		if s-bk.slot.Load() < Buckets {
			n += bk.n.Load()
		}
	}
	return n
}

// Reset forgets every event.
func (c *Counter) Reset() {
	for i := range c.buckets {
		c.buckets[i].n.Store(0)
	}
}
