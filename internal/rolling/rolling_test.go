package rolling

import (
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCounterRollsOff(t *testing.T) {
	c := Counter{Period: 10}
	for now := int64(0); now < 100; now += 10 { // one event in each of the 10 buckets
		c.Add(now)
	}
	if n := c.Sum(99); n != 10 {
		t.Fatalf("Sum = %d, want 10", n)
	}
	if n := c.Sum(105); n != 9 {
		t.Errorf("one period later Sum = %d, want 9 (the oldest bucket rolled off)", n)
	}
	c.Add(105) // reuses the oldest bucket's counter
	if n := c.Sum(105); n != 10 {
		t.Errorf("after an add in the new period Sum = %d, want 10", n)
	}
	if n := c.Sum(1000); n != 0 {
		t.Errorf("a whole window later Sum = %d, want 0", n)
	}
	c.Reset()
	if n := c.Sum(105); n != 0 {
		t.Errorf("after Reset Sum = %d", n)
	}
}

func TestCounterZeroCountsForever(t *testing.T) {
	var c Counter
	c.Add(1)
	c.Add(1 << 40)
	if n := c.Sum(1 << 50); n != 2 {
		t.Errorf("Sum = %d, want 2", n)
	}
}

func TestCounterConcurrentAddsInOnePeriod(t *testing.T) {
	c := Counter{Period: 1 << 40}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Add(5)
			}
		})
	}
	wg.Wait()
	if n := c.Sum(5); n != 8000 {
		t.Errorf("Sum = %d, want 8000: adds within one period are never lost", n)
	}
}
