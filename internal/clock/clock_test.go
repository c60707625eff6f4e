package clock

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFakeFiresDueTimersInOrder(t *testing.T) {
	f := NewFake(time.Second)
	var got []int
	f.AfterFunc(30*time.Millisecond, func() { got = append(got, 30) })
	f.AfterFunc(10*time.Millisecond, func() { got = append(got, 10) })
	late := f.AfterFunc(50*time.Millisecond, func() { got = append(got, 50) })
	tm := f.NewTimer(20 * time.Millisecond)

	f.Advance(35 * time.Millisecond)
	if len(got) != 2 || got[0] != 10 || got[1] != 30 {
		t.Fatalf("fired %v after 35ms, want [10 30]", got)
	}
	select {
	case <-tm.C():
	default:
		t.Fatal("NewTimer's channel did not receive after its time passed")
	}
	if f.Now() != time.Second+35*time.Millisecond {
		t.Errorf("Now() = %v, want 1.035s", f.Now())
	}
	if !late.Stop() || late.Stop() {
		t.Error("Stop: want true for a pending timer, then false")
	}
	f.Advance(time.Hour)
	if len(got) != 2 {
		t.Errorf("a stopped timer fired: %v", got)
	}
	if f.Timers() != 0 {
		t.Errorf("Timers() = %d after all fired or stopped", f.Timers())
	}
}

func TestFakeWaitTimers(t *testing.T) {
	f := NewFake(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-f.NewTimer(time.Minute).C()
	}()
	if !f.WaitTimers(1, 5*time.Second) {
		t.Fatal("WaitTimers did not see the goroutine's timer")
	}
	f.Advance(time.Minute)
	<-done
	if f.WaitTimers(1, 10*time.Millisecond) {
		t.Error("WaitTimers reported a timer after it fired")
	}
}

func TestAddSaturates(t *testing.T) {
	if got := Add(1<<62, 1<<62); got != 1<<63-1 {
		t.Errorf("Add overflowed: %v", got)
	}
	if got := Add(time.Second, time.Second); got != 2*time.Second {
		t.Errorf("Add(1s, 1s) = %v", got)
	}
}
