package deadline

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resilient-go/resilient/internal/clock"
)

var Now = clock.Now

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCtx(parent context.Context, d time.Duration) *Context {
	c := new(Context)
	c.Init(parent, Now()+d, nil)
	return c
}

func TestErrChecksClockWithoutDone(t *testing.T) {
	c := newCtx(context.Background(), -time.Millisecond)
	if err := c.Err(); err != context.DeadlineExceeded {
		t.Fatalf("Err() = %v past the deadline, want DeadlineExceeded", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Err reported the deadline")
	}
	if !c.Expired() {
		t.Error("Expired() = false for our own deadline")
	}
}

func TestDoneFiresAtDeadline(t *testing.T) {
	c := newCtx(context.Background(), 20*time.Millisecond)
	defer c.Release()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close after the deadline")
	}
	if c.Err() != context.DeadlineExceeded {
		t.Errorf("Err() = %v", c.Err())
	}
}

func TestParentCancelPropagates(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newCtx(parent, time.Hour)
	done := c.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("parent cancel did not reach Done")
	}
	if c.Err() != context.Canceled {
		t.Errorf("Err() = %v, want Canceled", c.Err())
	}
	if c.Expired() {
		t.Error("a parent's cancel counted as our expiry")
	}
}

// An expiry stays ours once the parent is released after it: a body
// abandoned at an attempt's deadline releases the stages above, and the
// read's error must still name the attempt.
func TestExpiryStaysOursAfterTheParentEnds(t *testing.T) {
	outer := newCtx(context.Background(), time.Hour)
	inner := newCtx(outer, -time.Millisecond)
	if inner.Err() != context.DeadlineExceeded {
		t.Fatalf("Err() = %v past the deadline, want DeadlineExceeded", inner.Err())
	}
	outer.Release()
	if !inner.Expired() {
		t.Error("the parent's release after our deadline disowned our expiry")
	}
	if outer.Expired() {
		t.Error("a released context counts as expired")
	}
}

// A child whose deadline passes after its parent ended is not expired:
// the parent's end was first.
func TestParentEndBeforeOurDeadlineIsNotOurs(t *testing.T) {
	outer := newCtx(context.Background(), time.Hour)
	inner := newCtx(outer, -time.Millisecond)
	outer.Release()
	if inner.Expired() {
		t.Error("the parent ended first, yet our deadline was counted as the cause")
	}
}

func TestParentCancelSeenByErrWithoutDone(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newCtx(parent, time.Hour)
	cancel()
	if c.Err() != context.Canceled {
		t.Errorf("Err() = %v, want Canceled", c.Err())
	}
}

func TestNestedSkipsOuterTimer(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	outer := newCtx(parent, time.Hour)
	inner := newCtx(outer, time.Minute)
	done := inner.Done()
	outer.mu.Lock()
	armed := outer.done != nil
	outer.mu.Unlock()
	if armed {
		t.Error("asking the inner context for Done armed the outer one's timer")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("grandparent cancel did not reach the inner context")
	}
	inner.Release()
	outer.Release()
}

func TestReleaseStopsTimerAndIsIdempotent(t *testing.T) {
	c := newCtx(context.Background(), time.Hour)
	done := c.Done()
	c.Release()
	c.Release()
	select {
	case <-done:
	default:
		t.Fatal("Release did not close Done")
	}
	if c.Err() != context.Canceled {
		t.Errorf("Err() = %v, want Canceled", c.Err())
	}
	if d, ok := c.Deadline(); !ok || d.IsZero() {
		t.Error("Deadline lost")
	}
}

func TestValueFromParent(t *testing.T) {
	type key struct{}
	c := newCtx(context.WithValue(context.Background(), key{}, "v"), time.Hour)
	if c.Value(key{}) != "v" {
		t.Error("Value not delegated to the parent")
	}
}

// skewOrigin steps the wall clock back by d since the process started.
func skewOrigin(t *testing.T, d time.Duration) {
	undo, ok := clock.SkewOriginWall(d)
	t.Cleanup(undo)
	if !ok {
		t.Fatalf("could not skew origin's wall clock by %v: has time.Time's layout changed?", d)
	}
}

func TestWallOnlyDeadlineAfterClockStep(t *testing.T) {
	skewOrigin(t, time.Hour)
	want := Now() + 10*time.Second
	got := Offset(time.Now().Add(10 * time.Second).Round(0)) // no monotonic reading
	if got < want-time.Second || got > want+time.Second {
		t.Errorf("Offset of a wall-only deadline 10s away = %v from now, want about 10s", got-Now())
	}
	if got := Offset(time.Now().Add(10 * time.Second)); got < want-time.Second || got > want+time.Second {
		t.Errorf("Offset of a monotonic deadline 10s away = %v from now, want about 10s", got-Now())
	}
}

func TestDeadlineWallReadingAfterClockStep(t *testing.T) {
	skewOrigin(t, time.Hour)
	c := newCtx(context.Background(), 10*time.Second)
	defer c.Release()
	d, ok := c.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	// Round(0) compares wall readings, which is what a deadline sent
	// elsewhere carries.
	if left := d.Round(0).Sub(time.Now().Round(0)); left < 9*time.Second || left > 11*time.Second {
		t.Errorf("Deadline() wall reading is %v away, want about 10s", left)
	}
	if left := time.Until(d); left < 9*time.Second || left > 11*time.Second {
		t.Errorf("Deadline() monotonic reading is %v away, want about 10s", left)
	}
}

func TestDeadlineOfSkipsTheClockForOurContext(t *testing.T) {
	c := newCtx(context.Background(), time.Minute)
	defer c.Release()
	if end, ok := DeadlineOf(c, nil); !ok || end != c.end {
		t.Errorf("DeadlineOf(*Context) = %v, %v; want %v, true", end, ok, c.end)
	}
	if _, ok := DeadlineOf(context.Background(), nil); ok {
		t.Error("DeadlineOf(Background) reported a deadline")
	}
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if end, ok := DeadlineOf(parent, nil); !ok || end < Now()+59*time.Second || end > Now()+time.Minute {
		t.Errorf("DeadlineOf(WithTimeout(1m)) = %v from now, want about 1m", end-Now())
	}
}

func TestDeadlineOfOnAnotherClock(t *testing.T) {
	fake := clock.NewFake(time.Hour)
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if end, ok := DeadlineOf(parent, fake); !ok || end < time.Hour+59*time.Second || end > time.Hour+time.Minute {
		t.Errorf("DeadlineOf(WithTimeout(1m), fake at 1h) = %v, want about 1h1m", end)
	}
	c := new(Context)
	c.Init(context.Background(), 2*time.Hour, fake)
	if end, ok := DeadlineOf(c, fake); !ok || end != 2*time.Hour {
		t.Errorf("DeadlineOf(*Context on the fake) = %v, want 2h", end)
	}
}
