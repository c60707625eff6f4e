package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a Clock that moves only when Advance is called. Timers due by
// the new time fire in order of their due time, from Advance's goroutine
// (AfterFunc's functions run there too, with no lock held). The zero value
// starts at offset 0 and wall time 2000-01-01 UTC.
type Fake struct {
	mu      sync.Mutex
	now     time.Duration // guarded by mu
	timers  []*fakeTimer  // guarded by mu; pending only
	changed chan struct{} // guarded by mu; closed when timers changes
}

// NewFake returns a Fake clock at offset start.
func NewFake(start time.Duration) *Fake { return &Fake{now: start} }

var fakeEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Now returns the fake offset.
func (f *Fake) Now() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Wall returns 2000-01-01 UTC plus the fake offset.
func (f *Fake) Wall() time.Time { return fakeEpoch.Add(f.Now()) }

// AfterFunc calls fn from Advance once d has passed.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(d, fn, nil)
}

// NewTimer returns a timer whose channel (buffered) receives once d has
// passed.
func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(d, nil, make(chan time.Time, 1))
}

func (f *Fake) add(d time.Duration, fn func(), c chan time.Time) *fakeTimer {
	f.mu.Lock()
	t := &fakeTimer{f: f, at: Add(f.now, max(d, 0)), fn: fn, c: c}
	f.timers = append(f.timers, t)
	f.notifyLocked()
	f.mu.Unlock()
	// A timer already due fires as a real one would: at once.
	if d <= 0 {
		f.Advance(0)
	}
	return t
}

// notifyLocked wakes WaitTimers; requires mu held.
func (f *Fake) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// Advance moves the clock by d and fires every timer due by then.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = Add(f.now, max(d, 0))
	now := f.now
	var due []*fakeTimer
	kept := f.timers[:0]
	for _, t := range f.timers {
		if t.at <= now {
			due = append(due, t)
		} else {
			kept = append(kept, t)
		}
	}
	f.timers = kept
	if len(due) > 0 {
		f.notifyLocked()
	}
	f.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at < due[j].at })
	for _, t := range due {
		if t.fn != nil {
			t.fn()
		} else {
			t.c <- fakeEpoch.Add(t.at)
		}
	}
}

// Timers returns how many timers are pending.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitTimers blocks until at least n timers are pending or timeout (real
// time) passes, and reports whether they are. Tests call it before Advance
// to know that the code under test has started its wait.
func (f *Fake) WaitTimers(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		if len(f.timers) >= n {
			f.mu.Unlock()
			return true
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

type fakeTimer struct {
	f  *Fake
	at time.Duration
	fn func()
	c  chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.timers {
		if p == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			f.notifyLocked()
			return true
		}
	}
	return false
}
