package redisfleet_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

func rateStage(p resilient.RateLimitPolicy) func(resilient.Fleet) resilient.Middleware {
	return func(f resilient.Fleet) resilient.Middleware {
		p.Fleet = f
		return resilient.RateLimit(p)
	}
}

// TestFleetSharedQuota is must-hold 3: five instances, four goroutines
// each, hold one quota of 50/s with a burst of 10 between them (alone,
// each would allow it: five times as much).
func TestFleetSharedQuota(t *testing.T) {
	s := startRedis(t)
	dep := newDependency(t, false)
	const rate, burst, run = 50, 10, 3 * time.Second
	fleet := make([]*instance, 5)
	for i := range fleet {
		fleet[i] = newInstance(t, s, redisfleet.Options{Prefix: t.Name()}, nil,
			rateStage(resilient.RateLimitPolicy{Rate: rate, Burst: burst}))
	}
	var other atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(run)
	for _, in := range fleet {
		for range 4 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					if err := in.call(context.Background(), dep.URL); err != nil && !errors.Is(err, resilient.ErrRateLimited) {
						other.Add(1)
						t.Errorf("refusal that is not ErrRateLimited: %v", err)
					}
					time.Sleep(2 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	want := float64(rate)*run.Seconds() + burst
	got := dep.hits.Load()
	t.Logf("the dependency saw %d calls in %v; the quota is %v", got, run, want)
	if float64(got) < 0.7*want || float64(got) > 1.1*want {
		t.Errorf("the dependency saw %d calls; want between %.0f and %.0f", got, 0.7*want, 1.1*want)
	}
}

// TestTakeRateGCRA: the script's answers on one schedule are the local
// GCRA's: a burst of turns at once, then one per interval, and a refusal
// that says how long until the next.
func TestTakeRateGCRA(t *testing.T) {
	s := startRedis(t)
	f := redisfleet.New(s.client(t), redisfleet.Options{Prefix: t.Name(), Timeout: time.Second})
	defer f.Close()
	ctx := t.Context()
	for i := range 3 {
		if wait, ok, err := f.TakeRate(ctx, "k", 10, 3, 0); err != nil || !ok || wait != 0 {
			t.Fatalf("turn %d of the burst: wait %v ok %v err %v", i, wait, ok, err)
		}
	}
	wait, ok, err := f.TakeRate(ctx, "k", 10, 3, 0)
	if err != nil || ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("after the burst: wait %v ok %v err %v; want refused, next turn within 100ms", wait, ok, err)
	}
	wait, ok, err = f.TakeRate(ctx, "k", 10, 3, time.Second)
	if err != nil || !ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("with a max wait: wait %v ok %v err %v; want reserved within 100ms", wait, ok, err)
	}
}
