package resilient

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
)

// fakeClock is a budget clock the test moves by hand.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Duration      { return time.Duration(c.t.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func newTestBudget(b *RetryBudget) (*RetryBudget, *fakeClock) {
	c := &fakeClock{}
	b.now = c.now
	return b, c
}

// drain takes retries until refused, at most limit, and returns how many.
func drain(b *RetryBudget, limit int) int {
	for n := 0; n < limit; n++ {
		if !b.tryRetry() {
			return n
		}
	}
	return limit
}

func TestBudgetDefaults(t *testing.T) {
	b, _ := newTestBudget(&RetryBudget{})
	for range 1000 {
		b.onCall()
	}
	// 20 % of 1000 calls, plus the floor of 10/s over a 10 s window.
	if n := drain(b, 1000); n != 300 {
		t.Errorf("allowed %d retries, want 300", n)
	}
}

func TestBudgetRatio(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		calls int
		want  int
	}{
		{1, 50, 60}, {0.5, 50, 35}, {0.3, 100, 40}, {2, 10, 30},
	} {
		b, _ := newTestBudget(&RetryBudget{Ratio: tc.ratio, MinPerSecond: 1})
		for range tc.calls {
			b.onCall()
		}
		if n := drain(b, 1000); n != tc.want {
			t.Errorf("ratio %v, %d calls: allowed %d retries, want %d", tc.ratio, tc.calls, n, tc.want)
		}
	}
}

func TestBudgetWindowExpires(t *testing.T) {
	b, clk := newTestBudget(&RetryBudget{})
	for range 100 {
		b.onCall()
	}
	if n := drain(b, 1000); n != 120 {
		t.Fatalf("allowed %d retries, want 120", n)
	}
	clk.advance(9 * time.Second)
	if b.tryRetry() {
		t.Fatal("a retry was allowed while the window still holds the spent ones")
	}
	// The calls and the retries of second 0 leave the window together:
	// only the floor is left.
	clk.advance(time.Second)
	if n := drain(b, 1000); n != 100 {
		t.Errorf("after the window allowed %d retries, want the floor of 100", n)
	}
}

func TestBudgetFloorIsPerSecond(t *testing.T) {
	b, clk := newTestBudget(&RetryBudget{})
	total := 0
	for range 300 { // 30 s in steps of 100 ms, with no calls at all
		total += drain(b, 1000)
		clk.advance(100 * time.Millisecond)
	}
	// A window's worth at once, then what expires: 10 per second.
	if total != 100+10*20 {
		t.Errorf("allowed %d retries over 30 s, want %d", total, 100+10*20)
	}
}

func TestBudgetNilAndUnlimited(t *testing.T) {
	var nilB *RetryBudget
	nilB.onCall()
	u := &RetryBudget{Unlimited: true}
	u.onCall()
	if drain(nilB, 1000) != 1000 || drain(u, 1000) != 1000 {
		t.Error("a nil or unlimited budget refused a retry")
	}
}

func TestBudgetConcurrentNeverOverdraws(t *testing.T) {
	b, clk := newTestBudget(&RetryBudget{})
	var got atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				b.onCall()
				if b.tryRetry() {
					got.Add(1)
				}
				if g == 0 && i%400 == 0 {
					// Cross slice boundaries, but stay inside one window.
					clk.advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	// No update may be lost and no retry taken on credit: what was taken
	// and what is left add up to the 20 % of 16000 calls plus the floor.
	left := drain(b, 10000)
	if n := int(got.Load()) + left; n != 3200+100 {
		t.Errorf("took %d + %d left = %d retries, want %d", got.Load(), left, n, 3300)
	}
}

func TestBudgetSlotPacking(t *testing.T) {
	for _, v := range []int64{0, 1, -1, -500, 1 << 38, -(1 << 38)} {
		w := pack(5, v)
		if got := slotValue(w, 5); got != v {
			t.Errorf("pack(5, %d) read back %d", v, got)
		}
		if got := slotValue(w, 5+budgetSlices-1); got != v {
			t.Errorf("a slot %d slices old read %d, want %d", budgetSlices-1, got, v)
		}
		if got := slotValue(w, 5+budgetSlices); got != 0 && v != 0 {
			t.Errorf("a slot a window old read %d, want 0", got)
		}
		if got := slotValue(w, 4); got != 0 && v != 0 {
			t.Errorf("a slot from the future read %d, want 0", got)
		}
	}
	// The tag wraps: slice 2^24+1 sees slice 2^24-1 as two slices old.
	if got := slotValue(pack(budgetTagMask, 7), 1); got != 7 {
		t.Errorf("across the tag wrap read %d, want 7", got)
	}
}

// onCall records a call now, as the stages do through onCallOnce.
func (b *RetryBudget) onCall() { b.onCallAt(clock.Now()) }
