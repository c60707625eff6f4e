package adaptive

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resilient-go/resilient/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newLimiter(initial int64) (*Limiter, *clock.Fake) {
	clk := clock.NewFake(time.Hour)
	return NewLimiter(&Settings{Initial: initial, Min: 1, Max: 256, Tolerance: 2, Clock: clk,
		MinWindow: 10 * time.Millisecond, MinSamples: 4}), clk
}

// window runs one window of calls at the limit, each answered after lat
// (or dropped), and returns the limit after it.
func window(l *Limiter, clk *clock.Fake, lat time.Duration, o Outcome) int64 {
	n := l.Limit()
	for range n {
		if !l.TryAcquire() {
			panic("no slot under the limit")
		}
	}
	l.TryAcquire() // one more, refused: the limit held a call back
	for range n {
		l.Release(o, lat, clk.Now()) // within the window: none closes it
	}
	clk.Advance(max(lat, l.window()))
	l.maybeClose(clk.Now())
	return l.Limit()
}

func TestSlowStartDoublesWhileLatencyHolds(t *testing.T) {
	l, clk := newLimiter(8)
	for _, want := range []int64{16, 32, 64, 128, 256, 256} {
		if got := window(l, clk, 5*time.Millisecond, Answered); got != want {
			t.Fatalf("limit %d, want %d", got, want)
		}
	}
	if b := l.Baseline(); b < 5*time.Millisecond || b > 6*time.Millisecond {
		t.Errorf("baseline %v, want about 5ms", b)
	}
}

func TestOverloadCutsThenAddsOne(t *testing.T) {
	l, clk := newLimiter(8)
	window(l, clk, 10*time.Millisecond, Answered) // baseline 10ms, limit 16
	if got := window(l, clk, 40*time.Millisecond, Answered); got != 8 {
		t.Fatalf("after a window at 4x the baseline: limit %d, want 16/2 = 8", got)
	}
	if got := window(l, clk, 10*time.Millisecond, Answered); got != 9 {
		t.Fatalf("after a window at the baseline past an overload: limit %d, want 8+1 = 9", got)
	}
	if got := window(l, clk, 15*time.Millisecond, Answered); got != 10 {
		t.Fatalf("after a window at 1.5x the baseline: limit %d, want 9+1 = 10", got)
	}
	if got := window(l, clk, 25*time.Millisecond, Answered); got != 7 {
		t.Fatalf("after a window at 2.5x the baseline: limit %d, want 10*0.7 = 7", got)
	}
}

func TestDropsCut(t *testing.T) {
	l, clk := newLimiter(20)
	if got := window(l, clk, 0, Dropped); got != 14 {
		t.Fatalf("after a window of drops: limit %d, want 14", got)
	}
}

func TestIdleLimitDoesNotGrow(t *testing.T) {
	l, clk := newLimiter(8)
	for range 5 {
		l.TryAcquire()
		for range 4 {
			l.Release(Answered, time.Millisecond, clk.Now())
			l.TryAcquire()
		}
		l.Release(Answered, time.Millisecond, clk.Now())
		clk.Advance(20 * time.Millisecond)
		l.maybeClose(clk.Now())
	}
	if got := l.Limit(); got != 8 {
		t.Errorf("limit %d after windows that never reached it, want 8", got)
	}
}

func TestWaitersGetSlotsInOrderAndGiveUp(t *testing.T) {
	l, clk := newLimiter(2)
	for range 2 {
		if !l.TryAcquire() {
			t.Fatal("no slot under the limit")
		}
	}
	got := queueWaiters(t, l, false, false)
	l.Release(Unknown, 0, clk.Now())
	if first := recv(t, got); first != 0 {
		t.Fatalf("slot went to waiter %d, want 0 (FIFO while a limit's worth wait)", first)
	}
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("second waiter has no timer")
	}
	clk.Advance(time.Minute)
	if second := recv(t, got); second != -2 {
		t.Fatalf("second waiter got %d after its wait ran out, want -2", second)
	}
	if l.InFlight() != 2 {
		t.Errorf("in flight %d, want 2 (one held, one granted)", l.InFlight())
	}
}

func TestBucketsBoundTheirLatencies(t *testing.T) {
	for d := 51 * time.Microsecond; d < 3*time.Minute; d = d * 21 / 20 {
		i := bucketOf(d)
		lo := bucketBase
		if i > 0 {
			lo = upper(i - 1)
		}
		if d < lo || d >= upper(i)+1 {
			t.Fatalf("%v in bucket %d, which holds [%v, %v)", d, i, lo, upper(i))
		}
	}
}

// queueWaiters starts one Acquire a waiter, in this order, each queued
// before the next starts, and returns the channel of their results: the
// waiter's index, negated and less one when it got no slot.
func queueWaiters(t *testing.T, l *Limiter, short ...bool) <-chan int {
	t.Helper()
	got := make(chan int, len(short))
	for i, s := range short {
		want := l.waiting.Load() + 1
		go func() {
			if l.Acquire(context.Background(), time.Minute, s) == Admitted {
				got <- i
			} else {
				got <- -i - 1
			}
		}()
		for deadline := time.Now().Add(5 * time.Second); l.waiting.Load() != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", i)
			}
		}
	}
	return got
}

// recv is the next waiter's result, or a failure after 5 s.
func recv(t *testing.T, got <-chan int) int {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no waiter answered")
		return 0
	}
}

func TestLongQueueServesNewestFirst(t *testing.T) {
	l, clk := newLimiter(1)
	if !l.TryAcquire() {
		t.Fatal("first slot")
	}
	got := queueWaiters(t, l, false, false, false)
	l.Release(Unknown, 0, clk.Now())
	if first := recv(t, got); first != 2 {
		t.Fatalf("with 3 waiting at a limit of 1, the slot went to waiter %d, want the newest, 2", first)
	}
	l.Release(Unknown, 0, clk.Now())
	if next := recv(t, got); next != 1 {
		t.Fatalf("with 2 waiting at a limit of 1, the slot went to waiter %d, want the newest, 1", next)
	}
	l.Release(Unknown, 0, clk.Now())
	recv(t, got)
	l.Release(Unknown, 0, clk.Now())
}

// An overload cut while calls wait turns away the callers with a deadline
// behind the newest limit's worth, and refuses new ones at once; callers
// without a deadline keep waiting.
func TestStandingQueueShedsCallersWithADeadline(t *testing.T) {
	l, clk := newLimiter(4)
	for range 4 {
		if !l.TryAcquire() {
			t.Fatal("no slot under the limit")
		}
	}
	l.Release(Dropped, 0, clk.Now()) // a drop in this window
	if !l.TryAcquire() {
		t.Fatal("the dropped call's slot did not come back")
	}
	got := queueWaiters(t, l, true, true, true, true, true, true, false) // 0-5 short, 6 not
	if a := l.Acquire(context.Background(), 0, true); a != WaitedOut {
		t.Fatalf("a call that may not wait: %v, want WaitedOut (the queue does not stand yet)", a)
	}
	clk.Advance(l.window())
	l.Release(Unknown, 0, clk.Now()) // closes the window: a drop, cut to 4*0.7 = 2
	if l.Limit() != 2 {
		t.Fatalf("limit %d after a window of drops, want 2", l.Limit())
	}
	for range 5 {
		if r := recv(t, got); r >= 0 || r < -5 {
			t.Fatalf("waiter %d got a slot or the wrong one was turned away; want waiters 0-4 turned away", r)
		}
	}
	if a := l.Acquire(context.Background(), time.Minute, true); a != Shed {
		t.Fatalf("a new caller with a deadline at a full standing queue: %v, want Shed", a)
	}
	if n := l.waiting.Load(); n != 2 {
		t.Fatalf("%d waiting, want the newest short waiter and the one without a deadline", n)
	}
	select {
	case r := <-got:
		t.Fatalf("waiter %d answered early", r)
	default:
	}
	for range 2 { // 3 in flight at a limit of 2: the second release grants a slot
		l.Release(Unknown, 0, clk.Now())
	}
	for _, want := range []int{5, 6} {
		if r := recv(t, got); r != want {
			t.Fatalf("waiter %d got the slot, want %d", r, want)
		}
		l.Release(Unknown, 0, clk.Now())
	}
}

// A healthy burst, which never cuts the limit, keeps every caller with a
// deadline in the queue, however long it is.
func TestBurstWithoutOverloadKeepsCallersWithADeadline(t *testing.T) {
	l, clk := newLimiter(1)
	if !l.TryAcquire() {
		t.Fatal("first slot")
	}
	got := queueWaiters(t, l, true, true, true)
	for range 3 {
		l.Release(Answered, time.Millisecond, clk.Now())
		if r := recv(t, got); r < 0 {
			t.Fatalf("waiter %d turned away without an overload", -r-1)
		}
	}
	l.Release(Answered, time.Millisecond, clk.Now())
}

// A limiter whose clock reads offset 0 (a fresh fake) has never cut its
// limit: a queue that forms at 0 is not a standing one.
func TestNoCutNoRefusalAtOffsetZero(t *testing.T) {
	clk := clock.NewFake(0)
	l := NewLimiter(&Settings{Initial: 1, Min: 1, Max: 256, Tolerance: 2, Clock: clk,
		MinWindow: 10 * time.Millisecond, MinSamples: 4})
	if !l.TryAcquire() {
		t.Fatal("first slot")
	}
	got := queueWaiters(t, l, true, true)
	for range 2 {
		l.Release(Answered, time.Millisecond, clk.Now())
		if r := recv(t, got); r < 0 {
			t.Fatalf("waiter %d turned away without an overload", -r-1)
		}
	}
	l.Release(Answered, time.Millisecond, clk.Now())
}
