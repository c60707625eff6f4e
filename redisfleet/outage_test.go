package redisfleet_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

// TestFleetRedisOutage is must-hold 4. Redis hangs, then dies, mid-run:
// no call fails and none takes 300 ms (a Redis call without its bound
// hangs for as long as Redis does). Redis comes back: three instances find
// the dependency dead, and a fresh fourth is refused before it has failed
// ConsecutiveFailures times itself.
func TestFleetRedisOutage(t *testing.T) {
	s := startRedis(t)
	dep := newDependency(t, false)
	opts := redisfleet.Options{Prefix: t.Name()}
	p := resilient.BreakerPolicy{ConsecutiveFailures: 5, OpenTimeout: 10 * time.Second}
	stages := []func(resilient.Fleet) resilient.Middleware{
		rateStage(resilient.RateLimitPolicy{Rate: 1000, Burst: 100}),
		breakerStage(p),
	}
	fleet := make([]*instance, 3)
	for i := range fleet {
		fleet[i] = newInstance(t, s, opts, nil, stages...)
	}
	ctx := t.Context()
	// The calls go on in their own goroutine; Redis hangs after 50 and
	// dies after 100, or after 2 s if the calls are stuck on it.
	var done atomic.Int64
	var slowest time.Duration
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range 200 {
			start := time.Now()
			if err := fleet[i%len(fleet)].call(ctx, dep.URL); err != nil {
				t.Errorf("call %d with Redis %s: %v", i, [...]string{"up", "hung", "dead", "dead"}[i/50], err)
			}
			slowest = max(slowest, time.Since(start))
			done.Add(1)
		}
	}()
	waitCalls := func(n int64, limit time.Duration) {
		for deadline := time.Now().Add(limit); done.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	waitCalls(50, 10*time.Second)
	s.freeze(true)
	waitCalls(100, 2*time.Second)
	s.freeze(false)
	s.kill()
	<-finished
	t.Logf("200 calls through a Redis outage: slowest %v", slowest.Round(time.Millisecond))
	if slowest >= 300*time.Millisecond {
		t.Errorf("slowest call %v; want under 300ms", slowest)
	}

	s.start()
	dep.down.Store(true)
	rdb := s.client(t)
	open := "{" + t.Name() + ":b:" + dep.URL + "}:open"
	for i := 0; ; i++ {
		_ = fleet[i%len(fleet)].call(ctx, dep.URL)
		if n, _ := rdb.Exists(ctx, open).Result(); n == 1 {
			break
		}
		if i == 300 {
			t.Fatal("the fleet never opened after Redis came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fresh := newInstance(t, s, opts, nil, stages...)
	failures := 0
	for {
		err := fresh.call(ctx, dep.URL)
		if errors.Is(err, resilient.ErrCircuitOpen) {
			break
		}
		if failures++; failures >= p.ConsecutiveFailures {
			t.Fatalf("the fresh instance failed %d times itself before the fleet held it open", failures)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("after the restart the fresh instance was refused after %d failures of its own", failures)
}

// TestFleetCommandsPerHealthyCall is must-hold 5, first half: a healthy
// call sends no Redis command.
func TestFleetCommandsPerHealthyCall(t *testing.T) {
	s := startRedis(t)
	dep := newDependency(t, false)
	fleet := make([]*instance, 5)
	for i := range fleet {
		fleet[i] = newInstance(t, s, redisfleet.Options{Prefix: t.Name()}, nil, breakerStage(resilient.BreakerPolicy{}))
	}
	before := s.commands(t)
	const calls = 1000
	for i := range calls {
		if err := fleet[i%len(fleet)].call(context.Background(), dep.URL); err != nil {
			t.Fatal(err)
		}
	}
	sent := s.commands(t) - before - 1 // the first INFO counts itself
	t.Logf("%d Redis commands for %d healthy calls: %.3f a call", sent, calls, float64(sent)/calls)
	if float64(sent)/calls > 0.05 {
		t.Errorf("%.3f Redis commands a healthy call; want at most 0.05", float64(sent)/calls)
	}
}
