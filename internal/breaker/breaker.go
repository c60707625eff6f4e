// Package breaker is the state machine behind the CircuitBreaker stage:
// closed, open, half-open, and nothing else beside it.
//
// It is ours rather than gobreaker's because gobreaker reads time.Now
// itself (no fake clock for tests), decays its consecutive-failure count
// with its rolling window (five failures "in a row" were forgotten when
// spread out), and takes its mutex on every call (its State() even moves
// the breaker, which ran callbacks inside a metrics collection). Here the
// closed path is two atomic loads and an atomic add; the mutex is taken
// only on failures while closed, for probes, and for transitions.
package breaker

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/pad"
	"github.com/resilient-go/resilient/internal/rolling"
)

// State is a breaker's state; its value is what the state gauge reports.
type State int32

// The states.
const (
	Closed   State = iota // calls go through and are counted
	HalfOpen              // up to Settings.HalfOpenRequests probes go through
	Open                  // calls are refused until the open timeout passes
)

// Outcome is what a call allowed through told about the dependency.
type Outcome uint8

// The outcomes.
const (
	Success Outcome = iota
	Failure
	Ignored // says nothing about the dependency; a probe's slot is given back
)

// Settings are shared by every breaker of a stage. Fields are final.
type Settings struct {
	ConsecutiveFailures int64   // trips on this many failures in a row, however far apart
	FailureRatio        float64 // trips when this share of the Window's calls failed...
	MinRequests         int64   // ...and the Window holds at least this many calls
	Window              time.Duration
	HalfOpenRequests    int64 // probes a half-open breaker lets through; all must succeed
	// A trip holds the breaker open for FirstOpen; after a failed probe
	// it waits a quarter of the outage so far (since the trip), at least
	// FirstOpen and at most MaxOpen: a blip costs a blip, a host back from
	// a long outage waits at most a quarter of it more, and a dead host is
	// probed ever less often.
	FirstOpen, MaxOpen time.Duration
	Clock              clock.Clock
}

// Change is one state transition, delivered by Flush.
type Change struct{ From, To State }

// Ticket is handed out by Allow and given back to Done: the breaker's
// generation and state at Allow, so that an outcome from an older state is
// dropped (a late failure cannot pose as a half-open probe's).
type Ticket uint64

func (t Ticket) state() State { return State(t & 3) }

// Probe reports whether the ticket is a half-open probe's.
func (t Ticket) Probe() bool { return t.state() == HalfOpen }

// Breaker is one key's circuit breaker. Safe for concurrent use.
type Breaker struct {
	s      *Settings
	jitter float64 // added share of each open wait, so a fleet does not probe in lockstep

	// word is gen<<2 | state. It changes only under mu; the closed path
	// reads it without the lock.
	word        atomic.Uint64
	openUntil   atomic.Int64 // clock offset a probe may go after; set before word says Open
	consecutive atomic.Int64 // failures in a row while closed
	pending     atomic.Bool  // queue may hold changes
	_           pad.Line     // every call through a closed breaker writes successes
	successes   rolling.Counter
	failures    rolling.Counter

	mu         sync.Mutex
	issued     int64         // guarded by mu: probes let through in this half-open state
	succeeded  int64         // guarded by mu: probes that succeeded
	isolated   atomic.Bool   // held open by Isolate until Reset; written under mu, read on refusals without it
	trippedAt  time.Duration // guarded by mu: clock offset of the trip from closed
	queue      []Change      // guarded by mu
	delivering bool          // guarded by mu
}

// New returns a closed breaker whose open waits are lengthened by jitter
// (a share, say 0.05).
func New(s *Settings, jitter float64) *Breaker {
	b := &Breaker{s: s, jitter: jitter}
	period := int64(s.Window / rolling.Buckets)
	b.failures.Period, b.successes.Period = period, period
	return b
}

// Allow asks to send a call. It returns a ticket for Done, or, when the
// call is refused, the time until a probe may go (zero while probes are in
// flight, or while the breaker is isolated).
func (b *Breaker) Allow() (t Ticket, wait time.Duration, ok bool) {
	w := b.word.Load()
	switch State(w & 3) {
	case Closed:
		return Ticket(w), 0, true
	case Open:
		// Refused without the lock: no convoy when a dead host is called
		// from many goroutines.
		if wait := time.Duration(b.openUntil.Load()) - b.s.Clock.Now(); wait > 0 {
			return 0, wait, false
		}
	}
	return b.allowSlow()
}

func (b *Breaker) allowSlow() (Ticket, time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.word.Load()
	switch State(w & 3) {
	case Closed:
		return Ticket(w), 0, true
	case Open:
		if b.isolated.Load() {
			return 0, 0, false
		}
		if wait := time.Duration(b.openUntil.Load()) - b.s.Clock.Now(); wait > 0 {
			return 0, wait, false
		}
		w = b.setLocked(HalfOpen)
	}
	if b.issued >= b.s.HalfOpenRequests {
		return 0, 0, false
	}
	b.issued++
	return Ticket(w), 0, true
}

// Done reports the outcome of a call Allow let through, at now (the
// caller's clock reading at the call's end, which saves reading it twice).
func (b *Breaker) Done(t Ticket, o Outcome, now time.Duration) {
	if t.state() == Closed {
		b.doneClosed(t, o, now)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.word.Load() != uint64(t) {
		return // the probe's state is gone
	}
	switch o {
	case Success:
		if b.succeeded++; b.succeeded >= b.s.HalfOpenRequests {
			b.setLocked(Closed)
		}
	case Failure:
		b.setLocked(Open)
	case Ignored:
		b.issued--
	}
}

func (b *Breaker) doneClosed(t Ticket, o Outcome, at time.Duration) {
	now := int64(at)
	switch o {
	case Success:
		b.successes.Add(now)
		if b.consecutive.Load() != 0 {
			b.consecutive.Store(0)
		}
	case Failure:
		b.failures.Add(now)
		if b.consecutive.Add(1) >= b.s.ConsecutiveFailures || b.ratioTripped(now) {
			b.mu.Lock()
			if b.word.Load() == uint64(t) {
				b.setLocked(Open)
			}
			b.mu.Unlock()
		}
	}
}

func (b *Breaker) ratioTripped(now int64) bool {
	f := b.failures.Sum(now)
	n := f + b.successes.Sum(now)
	return n >= b.s.MinRequests && float64(f) >= b.s.FailureRatio*float64(n)
}

// setLocked moves the breaker to st, starting a new generation, and queues
// the change for Flush. Requires mu held. It returns the new word.
func (b *Breaker) setLocked(st State) uint64 {
	old := b.word.Load()
	switch st {
	case Open:
		now := b.s.Clock.Now()
		openFor := b.s.FirstOpen
		if State(old&3) == HalfOpen { // a failed probe: the longer the outage, the longer the wait
			openFor = min(max(openFor, (now-b.trippedAt)/4), b.s.MaxOpen)
		} else {
			b.trippedAt = now
		}
		wait := clock.Add(openFor, time.Duration(b.jitter*float64(openFor)))
		b.openUntil.Store(int64(clock.Add(now, wait)))
	case HalfOpen:
		b.issued, b.succeeded = 0, 0
	case Closed:
		b.consecutive.Store(0)
		b.failures.Reset()
		b.successes.Reset()
	}
	w := (old>>2+1)<<2 | uint64(st)
	b.word.Store(w)
	if from := State(old & 3); from != st {
		b.queue = append(b.queue, Change{from, st})
		b.pending.Store(true)
	}
	return w
}

// Isolate holds the breaker open until Reset: no probe goes.
func (b *Breaker) Isolate() {
	b.mu.Lock()
	b.isolated.Store(true)
	b.setLocked(Open)
	b.openUntil.Store(math.MaxInt64)
	b.mu.Unlock()
}

// HoldOpen holds the breaker open until the clock offset until: a fleet
// that holds the key open tells each process when the fleet's probe is
// due. A closed or half-open breaker opens (a probe in flight is dropped);
// an open one moves its probe time, earlier too, so an until already past
// lets a probe go at once. An isolated breaker stays as it is.
func (b *Breaker) HoldOpen(until time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isolated.Load() {
		return
	}
	if State(b.word.Load()&3) != Open {
		if until <= b.s.Clock.Now() {
			return // nothing to hold
		}
		b.setLocked(Open)
	}
	b.openUntil.Store(int64(until))
}

// Reset closes the breaker and clears its counts, ending an Isolate.
func (b *Breaker) Reset() {
	b.mu.Lock()
	b.isolated.Store(false)
	b.setLocked(Closed)
	b.mu.Unlock()
}

// Isolated reports whether Isolate holds the breaker open. It takes no
// lock, so a refusal can say why without a convoy on the mutex.
func (b *Breaker) Isolated() bool { return b.isolated.Load() }

// Pending reports whether changes wait for Flush: one atomic load, so
// callers check it after Allow and Done at no cost.
func (b *Breaker) Pending() bool { return b.pending.Load() }

// Flush delivers queued changes to deliver, in order, with no lock held.
// One goroutine delivers at a time; a deliver that re-enters the breaker
// queues its own changes, which the delivering goroutine picks up after.
func (b *Breaker) Flush(deliver func(Change)) {
	for {
		b.mu.Lock()
		if b.delivering || len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		q := b.queue
		b.queue = nil
		b.pending.Store(false)
		b.delivering = true
		b.mu.Unlock()
		func() {
			defer func() {
				b.mu.Lock()
				b.delivering = false
				b.mu.Unlock()
			}()
			for _, c := range q {
				deliver(c)
			}
		}()
	}
}

// Snapshot is a breaker's state and counts at one moment.
type Snapshot struct {
	State               State
	Isolated            bool
	ConsecutiveFailures int64
	Failures, Successes int64 // in the Window, while closed
	ProbeIn             time.Duration
}

// Snapshot reads the breaker without changing it: an open breaker whose
// timeout has passed reads as half-open (a probe would go), but only a
// call moves it there, so reading never delivers a change.
func (b *Breaker) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.s.Clock.Now()
	s := Snapshot{
		State:               State(b.word.Load() & 3),
		Isolated:            b.isolated.Load(),
		ConsecutiveFailures: b.consecutive.Load(),
		Failures:            b.failures.Sum(int64(now)),
		Successes:           b.successes.Sum(int64(now)),
	}
	if s.State == Open && !s.Isolated {
		s.ProbeIn = time.Duration(b.openUntil.Load()) - now
		if s.ProbeIn <= 0 {
			s.State, s.ProbeIn = HalfOpen, 0
		}
	}
	return s
}

// State is Snapshot's state, without the lock.
func (b *Breaker) State() State {
	st := State(b.word.Load() & 3)
	if st == Open && time.Duration(b.openUntil.Load()) <= b.s.Clock.Now() {
		return HalfOpen
	}
	return st
}
