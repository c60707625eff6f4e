package deadline

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCtx(parent context.Context, d time.Duration) *Context {
	c := new(Context)
	c.Init(parent, Now()+d)
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
