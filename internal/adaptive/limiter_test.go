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
	l, clk := newLimiter(1)
	if !l.TryAcquire() {
		t.Fatal("first slot")
	}
	got := make(chan int, 2)
	for i := range 2 {
		go func() {
			if l.Acquire(context.Background(), time.Second, false) {
				got <- i
			} else {
				got <- -1
			}
		}()
		for l.waiting.Load() != int64(i+1) {
			time.Sleep(time.Millisecond)
		}
	}
	l.Release(Unknown, 0, clk.Now())
	if first := <-got; first != 0 {
		t.Fatalf("slot went to waiter %d, want 0 (FIFO)", first)
	}
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("second waiter has no timer")
	}
	clk.Advance(time.Second)
	if second := <-got; second != -1 {
		t.Fatalf("second waiter got %d after its wait ran out, want -1", second)
	}
	if l.InFlight() != 1 {
		t.Errorf("in flight %d, want 1 (the granted waiter)", l.InFlight())
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
