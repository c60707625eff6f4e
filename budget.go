package resilient

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/pad"
)

// Defaults of a RetryBudget, Finagle's numbers.
const (
	DefaultBudgetRatio        = 0.2
	DefaultBudgetWindow       = 10 * time.Second
	DefaultBudgetMinPerSecond = 10
)

// RetryBudget caps the retries of many calls together, so that a fleet of
// clients cannot multiply an outage: over any Window, retries stay within
// Ratio of the calls made, plus MinPerSecond retries per second that are
// always allowed (so that a client making few calls can still retry). When
// the budget is spent, a call returns the outcome it has.
//
// The zero value is ready to use with the defaults: 20 % of calls over
// 10 s, and at least 10 retries per second. Share one *RetryBudget between
// stages (Retry policies, Hedge policies) to cap them together. Set fields
// before first use and do not change or copy the budget afterwards.
//
// A RetryBudget is safe for concurrent use; recording a call and taking a
// retry are lock-free.
type RetryBudget struct {
	// Ratio is how many retries each call earns: 0.2 allows one retry for
	// every five calls. Zero means 0.2. At most 100; below 0.0001 it
	// counts as 0.0001.
	Ratio float64
	// Window is how long a call's earnings and a retry's cost count.
	// Zero means 10 s.
	Window time.Duration
	// MinPerSecond is how many retries per second are allowed whatever
	// the ratio. Zero means 10. The floor is capped at 2^38·Ratio/100
	// retries a Window (5.5e8 at the default Ratio, never under 274 877).
	MinPerSecond int
	// Unlimited switches the budget off: every retry is allowed. A policy
	// with Budget: &RetryBudget{Unlimited: true} retries as MaxAttempts
	// says, however many calls fail.
	Unlimited bool

	// now is the time since an arbitrary origin; nil means the monotonic
	// clock. Tests drive it.
	now func() time.Duration

	// stages is how many stages were built on this budget. Shared by two
	// (Retry and Hedge in one Chain), a call must be counted once, however
	// many of them it passes through.
	stages atomic.Int32

	_ pad.Line // every call writes a slot

	// slots is a ring of time slices of Window/budgetSlices each. A slot
	// packs the slice number (its low budgetTagBits) with the balance
	// earned in that slice, so a stale slot is recognised and reset by the
	// same compare-and-swap that updates it.
	slots [budgetSlices]atomic.Uint64
}

const (
	budgetSlices  = 10
	budgetTagBits = 24
	budgetValBits = 64 - budgetTagBits
	budgetTagMask = 1<<budgetTagBits - 1
	budgetValMask = 1<<budgetValBits - 1

	// budgetDeposit is what one call earns; a retry costs
	// budgetDeposit/Ratio. Integers keep the slots atomic words.
	budgetDeposit = 100

	// A retry's cost and the floor are capped so that no slot's balance
	// can leave its budgetValBits: a Ratio below budgetDeposit/budgetMaxCost
	// (1e-4) counts as that, and the floor holds at most
	// budgetMaxReserve/cost retries a window (over 270 000).
	budgetMaxCost    = 1_000_000
	budgetMaxReserve = 1 << 38
)

// check returns a *fieldError for the first field out of range.
func (b *RetryBudget) check() error {
	if b == nil || b.Unlimited {
		return nil
	}
	if math.IsNaN(b.Ratio) || b.Ratio < 0 || b.Ratio > 100 {
		return &fieldError{"RetryBudget.Ratio", "must be in [0, 100], got " + strconv.FormatFloat(b.Ratio, 'g', -1, 64)}
	}
	if b.Window < 0 {
		return &fieldError{"RetryBudget.Window", "must not be negative, got " + b.Window.String()}
	}
	if b.Window != 0 && b.Window < budgetSlices*time.Millisecond {
		return &fieldError{"RetryBudget.Window", "must be at least 10ms, got " + b.Window.String()}
	}
	if b.MinPerSecond < 0 {
		return &fieldError{"RetryBudget.MinPerSecond", "must not be negative, got " + strconv.Itoa(b.MinPerSecond)}
	}
	return nil
}

func (b *RetryBudget) window() time.Duration {
	if b.Window == 0 {
		return DefaultBudgetWindow
	}
	return b.Window
}

// cost is what one retry withdraws.
func (b *RetryBudget) cost() int64 {
	r := b.Ratio
	if r == 0 {
		r = DefaultBudgetRatio
	}
	return int64(max(1, min(math.Round(budgetDeposit/r), budgetMaxCost)))
}

// reserve is the floor: MinPerSecond retries for every second of Window.
func (b *RetryBudget) reserve(cost int64) int64 {
	n := b.MinPerSecond
	if n == 0 {
		n = DefaultBudgetMinPerSecond
	}
	return int64(min(math.Floor(float64(n)*b.window().Seconds())*float64(cost), budgetMaxReserve))
}

// slice returns the number of the current time slice.
func (b *RetryBudget) slice() uint64 { return b.sliceAt(clock.Now()) }

// sliceAt returns the number of the time slice holding now, an offset on
// the monotonic clock (deadline.Now), so wall-clock jumps neither empty
// nor refill a budget.
func (b *RetryBudget) sliceAt(now time.Duration) uint64 {
	if b.now != nil {
		now = b.now()
	}
	return uint64(now / (b.window() / budgetSlices))
}

// newBudget is a stage's own default budget, on the stage's clock (nil:
// the monotonic clock).
func newBudget(clk clock.Clock) *RetryBudget {
	b := new(RetryBudget)
	if clk != nil {
		b.now = clk.Now
	}
	return b
}

// use records that a stage was built on b.
func (b *RetryBudget) use() {
	if b != nil {
		b.stages.Add(1)
	}
}

// budgetMark marks a call's context as counted by a budget.
type budgetMark struct{ b *RetryBudget }

// onCallOnce records a call that started at t for a budget that may be shared: the first stage
// of the budget that sees the call counts it and marks req's context, so
// the stages below on the same budget do not count it again. A budget of
// one stage marks nothing and allocates nothing.
func (b *RetryBudget) onCallOnce(req *http.Request, t time.Duration) *http.Request {
	if b == nil || b.Unlimited {
		return req
	}
	if b.stages.Load() < 2 {
		b.onCallAt(t)
		return req
	}
	ctx := req.Context()
	if ctx.Value(budgetMark{b}) != nil {
		return req
	}
	b.onCallAt(t)
	return req.WithContext(context.WithValue(ctx, budgetMark{b}, true))
}

// onCallAt records one logical call that started at t, earning it a
// fraction of a retry. A nil budget records nothing.
func (b *RetryBudget) onCallAt(t time.Duration) {
	if b == nil || b.Unlimited {
		return
	}
	b.add(b.sliceAt(t), budgetDeposit)
}

// tryRetry withdraws one retry, reporting false if the budget is spent.
// A nil budget always allows.
func (b *RetryBudget) tryRetry() bool {
	if b == nil || b.Unlimited {
		return true
	}
	cost := b.cost()
	now := b.slice()
	tag := now & budgetTagMask
	cur := &b.slots[now%budgetSlices]
	for {
		// The balance is read slot by slot without a lock; the swap on
		// the current slot fails, and the sum is taken again, if another
		// call changed that slot meanwhile. Older slots only expire.
		old := cur.Load()
		bal := b.reserve(cost) + slotValue(old, tag)
		for i := range b.slots {
			if s := &b.slots[i]; s != cur {
				bal += slotValue(s.Load(), tag)
			}
		}
		if bal < cost {
			return false
		}
		if cur.CompareAndSwap(old, pack(tag, slotValue(old, tag)-cost)) {
			return true
		}
	}
}

// add adds v to the balance of slice now.
func (b *RetryBudget) add(now uint64, v int64) {
	tag := now & budgetTagMask
	cur := &b.slots[now%budgetSlices]
	for {
		old := cur.Load()
		if cur.CompareAndSwap(old, pack(tag, slotValue(old, tag)+v)) {
			return
		}
	}
}

// slotValue is the balance a slot holds for the window ending at slice
// tag: zero if the slot was last written more than a window ago.
func slotValue(w, tag uint64) int64 {
	if (tag-w>>budgetValBits)&budgetTagMask >= budgetSlices {
		return 0
	}
	return int64(w<<budgetTagBits) >> budgetTagBits // sign-extend
}

func pack(tag uint64, v int64) uint64 {
	return tag<<budgetValBits | uint64(v)&budgetValMask
}
