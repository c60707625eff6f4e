package adaptive

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/pad"
)

// Settings are shared by the limiters of a stage. Fields are final.
type Settings struct {
	Initial, Min, Max int64         // the limit starts at Initial and stays in [Min, Max]
	Tolerance         float64       // a window whose median exceeds Tolerance × baseline is overload
	Clock             clock.Clock   //
	MinWindow         time.Duration // windows last at least this long...
	MinSamples        int64         // ...and hold this many outcomes, unless a call was dropped
}

// Limiter keeps the calls in flight to one host at a limit it learns, as
// TCP's congestion control does: while calls queue for it, it doubles the
// limit in a window whose median latency holds at the baseline (within a
// quarter) until the first overload (slow start), and adds one a window
// otherwise; when the median passes Tolerance times the baseline, or calls
// were dropped (ended by a deadline before an answer), it cuts the limit
// by the latency's excess, by 30 % to a half. Overload shows as latency
// long before it shows as errors, so the limit finds the host's capacity
// without a failure; a healthy burst finds the limit doubling under it.
//
// A call over the limit waits for a slot: in order of arrival while a
// limit's worth or fewer wait, newest first past that. A healthy burst
// over a limit still learning is delayed, never refused. Once an overload
// cut the limit while calls queued, callers with a deadline are held to a
// limit's worth of waiters: the others are answered at once, so that they
// can fall back in time, instead of waiting rounds to be answered late.
// Safe for concurrent use.
type Limiter struct {
	// Read by every call; written once a window or when calls queue.
	s          *Settings
	limit      atomic.Int64
	waiting    atomic.Int64 // len(queue), readable without mu
	winStart   atomic.Int64 // clock offset
	lastCut    atomic.Int64 // clock offset of the last cut for an overload
	baseline   Baseline
	overloaded atomic.Bool // an overload was seen: growth no longer doubles
	dropping   atomic.Bool // the last window dropped calls: callers give up waiting
	_          pad.Line

	// Written by every call.
	inflight atomic.Int64
	peak     atomic.Int64 // most calls in flight, or waiting, this window
	_        pad.Line

	// Written by every timed call: the current window.
	hist  histogram
	drops atomic.Int64
	_     pad.Line

	mu          sync.Mutex
	queue       []waiter      // guarded by mu, in order of arrival
	queuedSince time.Duration // guarded by mu; clock offset at which the queue last became non-empty
}

// waiter is a call queued for a slot.
type waiter struct {
	ready chan bool // receives true when granted a slot, false when turned away
	short bool      // the caller has a deadline: Acquire's short
}

// NewLimiter returns a limiter at s.Initial.
func NewLimiter(s *Settings) *Limiter {
	l := &Limiter{s: s}
	l.limit.Store(s.Initial)
	l.lastCut.Store(math.MinInt64) // never cut: before any queue, on any clock
	l.winStart.Store(int64(s.Clock.Now()))
	return l
}

// Limit is the current limit.
func (l *Limiter) Limit() int64 { return l.limit.Load() }

// Baseline is the host's normal latency as learnt, or 0.
func (l *Limiter) Baseline() time.Duration { return l.baseline.Get() }

// TryAcquire takes a slot if one is free and nobody queues for one.
func (l *Limiter) TryAcquire() bool {
	for {
		n := l.inflight.Load()
		if n >= l.limit.Load() || l.waiting.Load() > 0 {
			return false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			l.notePeak(n + 1)
			return true
		}
	}
}

func (l *Limiter) notePeak(n int64) {
	for p := l.peak.Load(); n > p; p = l.peak.Load() {
		if l.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// Admission is Acquire's answer.
type Admission uint8

// The admissions.
const (
	Admitted  Admission = iota // the call holds a slot
	WaitedOut                  // no slot came within the wait or before ctx ended (or it might not wait)
	Shed                       // refused, or turned away, at a standing queue: the host is at its capacity
)

// Acquire waits for a slot for at most wait, and not past ctx. Anything
// but Admitted holds nothing. With short (the caller has a deadline), the
// call is refused at once when a limit's worth of calls wait already and
// the queue is a standing one: calls were dropped, or the limit was cut
// for an overload while the queue never emptied. Such a caller gains
// nothing from waiting rounds for a host that is at its capacity; it would
// be answered late or not at all, and a fallback now serves it better. A
// healthy burst, which raises the limit instead of cutting it, waits in
// full.
func (l *Limiter) Acquire(ctx context.Context, wait time.Duration, short bool) Admission {
	if l.TryAcquire() {
		return Admitted
	}
	if wait <= 0 {
		return WaitedOut
	}
	l.mu.Lock()
	// Counted as waiting before it looks at inflight: a Release that
	// lowers inflight after this look then sees the waiter and wakes it.
	l.waiting.Add(1)
	if l.inflight.Load() < l.limit.Load() && len(l.queue) == 0 {
		l.inflight.Add(1)
		l.waiting.Add(-1)
		l.mu.Unlock()
		return Admitted
	}
	if short && int64(len(l.queue)) >= l.limit.Load() && l.standing() {
		l.waiting.Add(-1)
		l.mu.Unlock()
		return Shed
	}
	if len(l.queue) == 0 {
		l.queuedSince = l.s.Clock.Now()
	}
	ready := make(chan bool, 1)
	l.queue = append(l.queue, waiter{ready, short})
	l.notePeak(l.inflight.Load() + int64(len(l.queue)))
	l.mu.Unlock()

	timer := l.s.Clock.NewTimer(wait)
	defer timer.Stop()
	select {
	case granted := <-ready:
		return admission(granted)
	case <-timer.C():
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, w := range l.queue {
		if w.ready == ready {
			l.queue = slices.Delete(l.queue, i, i+1)
			l.waiting.Add(-1)
			return WaitedOut
		}
	}
	return admission(<-ready) // answered as it gave up
}

// admission is what a waiter's answer means: a slot, or shed's refusal.
func admission(granted bool) Admission {
	if granted {
		return Admitted
	}
	return Shed
}

// standing reports whether the queue stands: calls were dropped, or the
// limit was cut for an overload since the queue last emptied. l.mu held.
func (l *Limiter) standing() bool {
	return l.dropping.Load() || time.Duration(l.lastCut.Load()) >= l.queuedSince
}

// Measure reports whether the call that just took a slot should be timed:
// always near the limit (three quarters of it or more in flight, or calls
// waiting), where its decisions are made, and one call in 16 otherwise, to
// keep learning the baseline. A call not timed is released with
// ReleaseUntimed and costs no clock reads: most calls, on a host far from
// its limit. (At half the limit, 32 callers on 2 cores timed 64 % of
// their calls: goroutines descheduled mid-call hold slots.)
func (l *Limiter) Measure() bool {
	if 4*l.inflight.Load() >= 3*l.limit.Load() || l.waiting.Load() > 0 {
		return true
	}
	return rand.Uint32()&15 == 0 // per-thread state: no counter shared by every call
}

// ReleaseUntimed gives back the slot of a call Measure said not to time.
func (l *Limiter) ReleaseUntimed() {
	if l.waiting.Load() == 0 || !l.grant() {
		l.inflight.Add(-1)
		l.wake()
	}
}

// Outcome is what a call that held a slot told about the host.
type Outcome uint8

// The outcomes.
const (
	Answered Outcome = iota // a response came, after the latency given
	Dropped                 // a deadline ended the call before an answer
	Unknown                 // says nothing of the host's load (refused, a caller's mistake)
)

// Release gives a slot back with the call's outcome, at now (the caller's
// clock reading at the call's end, which saves reading it twice).
func (l *Limiter) Release(o Outcome, latency, now time.Duration) {
	l.maybeClose(now) // before this outcome, which belongs to the next window
	switch o {
	case Answered:
		l.hist.add(latency)
	case Dropped:
		l.drops.Add(1)
	}
	l.ReleaseUntimed()
}

// grant hands the releasing call's slot to the next waiter, if the limit
// still allows it.
func (l *Limiter) grant() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 || l.inflight.Load() > l.limit.Load() {
		return false
	}
	l.popNext()
	return true
}

// popNext grants a slot to the next waiter: the oldest while the queue
// holds a limit's worth or fewer (a round's wait at most, where order of
// arrival is fair), the newest past that (adaptive LIFO, as Facebook's
// queues do): a long queue means the host is slower than its callers,
// and serving the newest serves calls whose callers still wait for the
// answer, while the oldest, nearest their deadlines, give up. l.mu held,
// queue not empty.
func (l *Limiter) popNext() {
	i := 0
	if int64(len(l.queue)) > l.limit.Load() {
		i = len(l.queue) - 1
	}
	l.queue[i].ready <- true
	l.queue = slices.Delete(l.queue, i, i+1)
	l.waiting.Add(-1)
}

// maybeClose ends the window once it is long and full enough (or held a
// drop), and adjusts the limit. One caller closes a window; the others
// go on.
func (l *Limiter) maybeClose(now time.Duration) {
	start := time.Duration(l.winStart.Load())
	n, drops := l.hist.n.Load(), l.drops.Load()
	if now-start < l.window() || (n < l.s.MinSamples && drops == 0) {
		return
	}
	if !l.winStart.CompareAndSwap(int64(start), int64(now)) {
		return
	}
	median := l.hist.quantile(0.5)
	peak := l.peak.Swap(l.inflight.Load())
	l.hist.reset()
	l.drops.Store(0)
	l.adjust(median, n, drops, peak, now)
}

// window is the length of a window: four typical calls, so that a window
// sees the effect of the last change, at least MinWindow.
func (l *Limiter) window() time.Duration {
	return max(l.s.MinWindow, 4*l.baseline.Get())
}

func (l *Limiter) adjust(median time.Duration, answered, drops, peak int64, now time.Duration) {
	base := l.baseline.Get()
	dropping := drops > 0 && drops*10 >= answered+drops // a tenth dropped
	l.dropping.Store(dropping)
	overloaded := dropping ||
		base > 0 && median > time.Duration(l.s.Tolerance*float64(base))
	limit := l.limit.Load()
	switch {
	case overloaded:
		l.overloaded.Store(true)
		// Down by the latency's excess over the tolerance, between a
		// half and 70 %: far past it, the limit was far too high.
		cut := 0.7
		if base > 0 && median > 0 {
			cut = min(max(l.s.Tolerance*float64(base)/float64(median), 0.5), 0.7)
		}
		limit = int64(float64(limit) * cut)
		l.lastCut.Store(int64(now))
		defer l.shed()
	case answered > 0 && peak >= limit: // the limit held calls back
		if l.overloaded.Load() || base > 0 && median > base*5/4 {
			limit++ // an overload was seen, or latency is rising: near the knee
		} else {
			limit *= 2 // at its floor, and no overload yet: slow start
		}
	}
	if answered > 0 && !overloaded {
		l.baseline.learn(median, 256)
	}
	l.limit.Store(min(max(limit, l.s.Min), l.s.Max))
	l.wake()
}

// shed turns away the callers with a deadline queued behind the newest
// limit's worth once an overload made the queue a standing one: they
// would wait out rounds at a host already at its capacity, as Acquire
// refuses new ones. Callers without a deadline keep their place.
func (l *Limiter) shed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := int64(len(l.queue)) - l.limit.Load() // the first of the newest limit's worth
	keep := l.queue[:0]
	for i, w := range l.queue {
		if w.short && int64(i) < oldest {
			w.ready <- false
			l.waiting.Add(-1)
			continue
		}
		keep = append(keep, w)
	}
	clear(l.queue[len(keep):])
	l.queue = keep
}

// wake grants waiting calls the slots a raised limit freed.
func (l *Limiter) wake() {
	if l.waiting.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) > 0 && l.inflight.Load() < l.limit.Load() {
		l.inflight.Add(1)
		l.popNext()
	}
}

// InFlight is how many calls hold a slot.
func (l *Limiter) InFlight() int64 { return l.inflight.Load() }
