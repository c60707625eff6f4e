// Package adaptive learns a host's normal latency and keeps the calls in
// flight to it where that latency holds: the adaptive defences of the
// Bulkhead (a concurrency limit) and the CircuitBreaker (slow calls).
package adaptive

import (
	"math"
	"sync/atomic"
	"time"
)

// A histogram's buckets are quarters of octaves from 50 µs: bucket 4k+q
// holds latencies in 50µs·2^k·[1+q/4, 1+(q+1)/4). 96 buckets reach past 3
// minutes; a quantile read from them is within 25 % of the truth, which is
// plenty to tell "as usual" from "ten times slower". The bucket comes from
// the float's exponent and top mantissa bits: no logarithm on every call.
const (
	buckets    = 96
	bucketBase = 50 * time.Microsecond
)

func bucketOf(d time.Duration) int {
	if d <= bucketBase {
		return 0
	}
	bits := math.Float64bits(float64(d) / float64(bucketBase))
	exp := int(bits>>52&0x7ff) - 1023 // floor(log2), at least 0
	quarter := int(bits >> 50 & 3)    // which quarter of the octave
	return min(4*exp+quarter, buckets-1)
}

// upper is bucket i's upper bound: what a quantile falling in it reads as.
func upper(i int) time.Duration {
	return time.Duration(float64(bucketBase) * math.Ldexp(1+float64(i%4+1)/4, i/4))
}

// histogram counts latencies without a lock. Adds racing a reset may be
// lost: it estimates, it does not account.
type histogram struct {
	n      atomic.Int64
	counts [buckets]atomic.Int64
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.n.Add(1)
}

// quantile reads the q-quantile (0 < q < 1) of what was added, or 0 when
// nothing was.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.counts {
		if seen += h.counts[i].Load(); seen >= rank {
			return upper(i)
		}
	}
	return upper(buckets - 1)
}

func (h *histogram) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
}

// Baseline is a host's normal latency: the median of its calls when it is
// not overloaded. It falls at once to a lower window's median (the host
// was slowed by load before) and rises slowly, by a fraction of the gap a
// window (a 32nd for the breaker's quarter-second windows, a 256th for the
// limiter's, which can be 20 ms), so a host that has become slower for good
// is learnt again in seconds while a burst of slow calls, or the latency
// the limit's own overshoot causes, moves it little.
type Baseline struct {
	ns atomic.Int64 // 0: not known yet
}

// Get returns the baseline, or 0 while it is unknown.
func (b *Baseline) Get() time.Duration { return time.Duration(b.ns.Load()) }

// learn folds in a window's median, rising by 1/rise of the gap. Only one
// goroutine learns at a time (the one that closes the window).
func (b *Baseline) learn(median time.Duration, rise int64) {
	old := time.Duration(b.ns.Load())
	switch {
	case old == 0 || median < old:
		b.ns.Store(int64(median))
	default:
		b.ns.Store(int64(old + (median-old)/time.Duration(rise)))
	}
}

// Tracker learns a host's Baseline from the latencies of its answered
// calls, a window (at least minWindow long, with at least minSamples
// calls) at a time. Safe for concurrent use.
type Tracker struct {
	Baseline
	hist  histogram
	start atomic.Int64 // the window's start, a clock offset
}

// Window bounds of a Tracker.
const (
	TrackerWindow  = 250 * time.Millisecond
	TrackerSamples = 10
)

// Add counts an answered call that took d, at now.
func (t *Tracker) Add(d, now time.Duration) {
	t.hist.add(d)
	start := t.start.Load()
	if now-time.Duration(start) < TrackerWindow || t.hist.n.Load() < TrackerSamples {
		return
	}
	if t.start.CompareAndSwap(start, int64(now)) {
		t.learn(t.hist.quantile(0.5), 32)
		t.hist.reset()
	}
}
