package redisfleet_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

var fortyPolicy = resilient.BreakerPolicy{ConsecutiveFailures: 5, OpenTimeout: 2 * time.Second}

// TestFleetLearnsDeadDependency is must-hold 1: 40 instances learn a dead
// dependency with at most 40 requests (alone: 200), probe it at most 10
// times in three open intervals (alone: about 40 an interval), and all
// reach it within two intervals after it recovers. Fails with Quorum huge
// (nothing shared) and without the probe lock.
func TestFleetLearnsDeadDependency(t *testing.T) {
	s := startRedis(t)
	dep := newDependency(t, true)
	fleet := make([]*instance, 40)
	for i := range fleet {
		fleet[i] = newInstance(t, s, redisfleet.Options{Prefix: t.Name()}, nil, breakerStage(fortyPolicy))
	}
	ctx := t.Context()

	// Round-robin until a whole round is refused.
	refusedInRow := 0
	for i := 0; i < 400 && refusedInRow < len(fleet); i++ {
		if err := fleet[i%len(fleet)].call(ctx, dep.URL); errors.Is(err, resilient.ErrCircuitOpen) {
			refusedInRow++
		} else {
			refusedInRow = 0
		}
		time.Sleep(2 * time.Millisecond) // a steady stream, not a burst
	}
	learn := dep.hits.Load()
	if refusedInRow < len(fleet) || learn > 40 {
		t.Fatalf("the dependency saw %d requests before the fleet stopped (stopped: %v); want at most 40", learn, refusedInRow >= len(fleet))
	}

	// Every instance calls every 20 ms for three open intervals.
	every := func(d time.Duration, each func(i int, in *instance) bool) {
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for i, in := range fleet {
			wg.Go(func() {
				for time.Now().Before(stop) && each(i, in) {
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		wg.Wait()
	}
	every(3*fortyPolicy.OpenTimeout, func(_ int, in *instance) bool { _ = in.call(ctx, dep.URL); return true })
	probes := dep.hits.Load() - learn
	t.Logf("learned with %d requests; %d probes in three open intervals", learn, probes)
	if probes > 10 {
		t.Errorf("%d probes reached the dependency in three open intervals; want at most 10", probes)
	}

	// It recovers: every instance reaches it within two open intervals.
	dep.down.Store(false)
	start := time.Now()
	var reached atomic.Int64
	every(2*fortyPolicy.OpenTimeout, func(_ int, in *instance) bool {
		if in.call(ctx, dep.URL) == nil {
			reached.Add(1)
			return false
		}
		return true
	})
	if reached.Load() != int64(len(fleet)) {
		t.Errorf("%d of %d instances reached the recovered dependency within two open intervals", reached.Load(), len(fleet))
	}
	t.Logf("all %d reached it after recovery within %v", reached.Load(), time.Since(start).Round(time.Millisecond))
}

// refusedDials is a transport whose every dial is refused, as on a
// machine whose network is broken.
func refusedDials(t *testing.T) http.RoundTripper {
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// TestFleetOneBadInstance is must-hold 2: an instance whose network is
// broken reports all it sees, and the healthy instances' calls all still
// go. Fails with Quorum 1.
func TestFleetOneBadInstance(t *testing.T) {
	s := startRedis(t)
	dep := newDependency(t, false)
	opts := redisfleet.Options{Prefix: t.Name()}
	p := fortyPolicy
	p.OpenTimeout = 50 * time.Millisecond // the bad one probes, and fails, often
	bad := newInstance(t, s, opts, refusedDials(t), breakerStage(p))
	healthy := make([]*instance, 5)
	for i := range healthy {
		healthy[i] = newInstance(t, s, opts, nil, breakerStage(p))
	}
	ctx := t.Context()
	for range 20 {
		_ = bad.call(ctx, dep.URL)
	}
	// Wait (bounded) until the bad instance's evidence has landed.
	rdb := s.client(t)
	tag := "{" + t.Name() + ":b:" + dep.URL + "}"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := rdb.Exists(ctx, tag+":ev", tag+":open").Result(); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bad instance's failures never reached Redis")
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // keeps hammering
		for {
			select {
			case <-done:
				return
			default:
				_ = bad.call(ctx, dep.URL)
				time.Sleep(time.Millisecond)
			}
		}
	})
	failed := 0
	for i := range 100 {
		if err := healthy[i%len(healthy)].call(ctx, dep.URL); err != nil {
			failed++
			t.Logf("healthy call %d: %v", i, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d of 100 healthy calls failed while one instance's network was broken; want 0", failed)
	}
}
