package breaker

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resilient-go/resilient/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newBreaker(t *testing.T, edit func(*Settings)) (*Breaker, *clock.Fake, *[]Change) {
	t.Helper()
	clk := clock.NewFake(time.Hour)
	s := &Settings{ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 20,
		Window: 10 * time.Second, HalfOpenRequests: 1, FirstOpen: 5 * time.Second, MaxOpen: 5 * time.Second, Clock: clk}
	if edit != nil {
		edit(s)
	}
	var changes []Change
	b := New(s, 0)
	return b, clk, &changes
}

// call runs one call through b with outcome o; false if refused.
func call(b *Breaker, changes *[]Change, o Outcome) bool {
	tk, _, ok := b.Allow()
	if ok {
		b.Done(tk, o, b.s.Clock.Now())
	}
	if b.Pending() {
		b.Flush(func(c Change) {
			if changes != nil {
				*changes = append(*changes, c)
			}
		})
	}
	return ok
}

func TestConsecutiveFailuresCountInARowHoweverFarApart(t *testing.T) {
	b, clk, _ := newBreaker(t, func(s *Settings) { s.Window = 100 * time.Millisecond })
	for i := range 2 {
		if !call(b, nil, Failure) {
			t.Fatalf("call %d refused", i+1)
		}
		clk.Advance(200 * time.Millisecond) // past the whole window
	}
	var changes []Change
	call(b, &changes, Failure)
	if b.State() != Open || len(changes) != 1 || changes[0] != (Change{Closed, Open}) {
		t.Fatalf("after 3 failures 200ms apart: state %v, changes %v; want open", b.State(), changes)
	}
	if call(b, &changes, Success) {
		t.Fatal("the 4th call was sent through an open breaker")
	}
}

func TestSuccessBreaksTheRun(t *testing.T) {
	b, _, _ := newBreaker(t, nil)
	for _, o := range []Outcome{Failure, Failure, Success, Failure, Failure} {
		call(b, nil, o)
	}
	if b.State() != Closed {
		t.Fatalf("state %v after F F S F F with a threshold of 3", b.State())
	}
}

func TestIgnoredOutcomesNeitherCountNorBreakTheRun(t *testing.T) {
	b, _, _ := newBreaker(t, nil)
	for _, o := range []Outcome{Failure, Failure, Ignored, Ignored} {
		call(b, nil, o)
	}
	if b.Snapshot().ConsecutiveFailures != 2 {
		t.Fatalf("consecutive = %d, want 2", b.Snapshot().ConsecutiveFailures)
	}
	call(b, nil, Failure)
	if b.State() != Open {
		t.Fatal("third failure after ignored outcomes did not trip")
	}
}

func TestFailureRatioOverWindow(t *testing.T) {
	b, _, _ := newBreaker(t, func(s *Settings) { s.ConsecutiveFailures = 1000; s.MinRequests = 10 })
	// 5 successes and 5 failures alternating: 50 % of 10 calls.
	for i := range 10 {
		o := Success
		if i%2 == 1 {
			o = Failure
		}
		call(b, nil, o)
	}
	if b.State() != Open {
		t.Fatalf("50%% failures over 10 calls: state %v, want open", b.State())
	}
	// The same mix spread over more than the window never trips.
	b, clk, _ := newBreaker(t, func(s *Settings) { s.ConsecutiveFailures = 1000; s.MinRequests = 10 })
	for i := range 40 {
		o := Success
		if i%2 == 1 {
			o = Failure
		}
		call(b, nil, o)
		clk.Advance(3 * time.Second) // about three calls a window
	}
	if b.State() != Closed {
		t.Fatal("failures spread past the window tripped the ratio")
	}
}

func TestOpenThenProbe(t *testing.T) {
	b, clk, changes := newBreaker(t, nil)
	for range 3 {
		call(b, changes, Failure)
	}
	_, wait, ok := b.Allow()
	if ok || wait != 5*time.Second {
		t.Fatalf("open breaker: ok=%v wait=%v, want refused with 5s", ok, wait)
	}
	clk.Advance(5 * time.Second)
	if b.State() != HalfOpen {
		t.Fatalf("State() after the open timeout = %v, want half-open", b.State())
	}
	if len(*changes) != 1 {
		t.Fatalf("reading the state delivered changes: %v", *changes)
	}
	probe, _, ok := b.Allow()
	if !ok {
		t.Fatal("probe refused after the open timeout")
	}
	if _, wait, ok := b.Allow(); ok || wait != 0 {
		t.Fatalf("second call while the probe is in flight: ok=%v wait=%v", ok, wait)
	}
	b.Done(probe, Success, clk.Now())
	b.Flush(func(c Change) { *changes = append(*changes, c) })
	want := []Change{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Closed}}
	if len(*changes) != 3 || (*changes)[1] != want[1] || (*changes)[2] != want[2] {
		t.Fatalf("changes %v, want %v", *changes, want)
	}
}

func TestFailedProbeReopensAndIgnoredProbeGivesSlotBack(t *testing.T) {
	b, clk, _ := newBreaker(t, nil)
	for range 3 {
		call(b, nil, Failure)
	}
	clk.Advance(5 * time.Second)
	if !call(b, nil, Ignored) {
		t.Fatal("probe refused")
	}
	if !call(b, nil, Failure) {
		t.Fatal("an ignored probe did not give its slot back")
	}
	if _, wait, ok := b.Allow(); ok || wait != 5*time.Second {
		t.Fatalf("after a failed probe: ok=%v wait=%v, want open for 5s", ok, wait)
	}
}

func TestLateOutcomeFromOldStateDropped(t *testing.T) {
	b, clk, _ := newBreaker(t, nil)
	late, _, _ := b.Allow() // a closed-state call still in flight
	for range 3 {
		call(b, nil, Failure)
	}
	clk.Advance(5 * time.Second)
	probe, _, ok := b.Allow()
	if !ok {
		t.Fatal("probe refused")
	}
	b.Done(late, Failure, clk.Now()) // must not count as the probe's outcome
	if b.Snapshot().State != HalfOpen {
		t.Fatalf("a late closed-state failure moved a half-open breaker to %v", b.Snapshot().State)
	}
	b.Done(probe, Success, clk.Now())
	if b.State() != Closed {
		t.Fatal("probe success did not close")
	}
}

func TestIsolateAndReset(t *testing.T) {
	b, clk, changes := newBreaker(t, nil)
	b.Isolate()
	clk.Advance(24 * time.Hour)
	if _, _, ok := b.Allow(); ok {
		t.Fatal("isolated breaker let a call through after a day")
	}
	if s := b.Snapshot(); s.State != Open || !s.Isolated {
		t.Fatalf("snapshot %+v, want open and isolated", s)
	}
	b.Reset()
	if !call(b, changes, Success) {
		t.Fatal("call refused after Reset")
	}
	if len(*changes) != 2 || (*changes)[1] != (Change{Open, Closed}) {
		t.Fatalf("changes %v", *changes)
	}
}

func TestFlushReentrantKeepsOrder(t *testing.T) {
	b, clk, _ := newBreaker(t, func(s *Settings) { s.ConsecutiveFailures = 1 })
	var got []Change
	var deliver func(Change)
	deliver = func(c Change) {
		got = append(got, c)
		if c.To == Open { // re-enter: probe and succeed from inside the callback
			clk.Advance(5 * time.Second)
			call(b, &[]Change{}, Success)
			b.Flush(deliver) // returns at once: another delivery is running
		}
	}
	tk, _, _ := b.Allow()
	b.Done(tk, Failure, clk.Now())
	b.Flush(deliver)
	want := []Change{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Closed}}
	if len(got) != 3 {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestConcurrentCallsOneTripOneProbe(t *testing.T) {
	b, clk, _ := newBreaker(t, func(s *Settings) { s.ConsecutiveFailures = 5 })
	var mu sync.Mutex
	var changes []Change
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				tk, _, ok := b.Allow()
				if ok {
					b.Done(tk, Failure, clk.Now())
				}
				b.Flush(func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() })
			}
		}()
	}
	wg.Wait()
	if len(changes) != 1 || changes[0] != (Change{Closed, Open}) {
		t.Fatalf("changes %v, want one trip", changes)
	}
	clk.Advance(5 * time.Second)
	var probes sync.WaitGroup
	let := make(chan Ticket, 16)
	for range 16 {
		probes.Add(1)
		go func() {
			defer probes.Done()
			if tk, _, ok := b.Allow(); ok {
				let <- tk
			}
		}()
	}
	probes.Wait()
	close(let)
	if n := len(let); n != 1 {
		t.Fatalf("%d probes let through, want 1", n)
	}
}

// After a failed probe the breaker waits a quarter of the outage so far,
// at least FirstOpen and at most MaxOpen; closing starts over.
func TestOpenWaitGrowsWithTheOutage(t *testing.T) {
	b, clk, _ := newBreaker(t, func(s *Settings) { s.FirstOpen, s.MaxOpen = time.Second, 5*time.Second })
	for range 3 {
		call(b, nil, Failure)
	}
	// Probes fail at once at 1, 2, 3, 4 s into the outage (waits of 1 s,
	// the floor), then at 5 s (a quarter: 1.25 s), at 6.25 s (1.5625 s).
	for _, want := range []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second,
		1250 * time.Millisecond, 1562500 * time.Microsecond} {
		if _, wait, ok := b.Allow(); ok || wait != want {
			t.Fatalf("open wait %v (ok=%v), want %v", wait, ok, want)
		}
		clk.Advance(want)
		call(b, nil, Failure) // the probe fails
	}
	clk.Advance(30 * time.Second)
	call(b, nil, Failure) // a probe fails 40 s into the outage: a quarter is past MaxOpen
	if _, wait, _ := b.Allow(); wait != 5*time.Second {
		t.Fatalf("40 s into an outage: wait %v, want MaxOpen, 5s", wait)
	}
	clk.Advance(5 * time.Second)
	call(b, nil, Success) // a good probe closes it
	for range 3 {
		call(b, nil, Failure)
	}
	if _, wait, _ := b.Allow(); wait != time.Second {
		t.Errorf("after closing and tripping again: wait %v, want the first 1s", wait)
	}
}
