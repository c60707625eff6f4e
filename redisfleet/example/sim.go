package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

// memDep is an in-memory dependency: the simulation measures Redis, and
// 20,000 real HTTP calls a second would only measure the loopback.
type memDep struct{ down atomic.Bool }

func (d *memDep) RoundTrip(req *http.Request) (*http.Response, error) {
	code := http.StatusOK
	if d.down.Load() {
		code = http.StatusServiceUnavailable
	}
	return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
}

// simulate runs c.simN instances, each its own Fleet and pipeline on one
// shared redis.Client (one pool, plus one pub/sub connection per Fleet),
// at c.simRate calls a second in all, healthy, dead, then flapping, and
// prints Redis's commands a second in each phase.
func simulate(w io.Writer, c config, rdb *redis.Client) error {
	dep := &memDep{}
	prefix := fmt.Sprintf("sim-%d", time.Now().UnixNano())
	rts := make([]http.RoundTripper, c.simN)
	for i := range rts {
		f := redisfleet.New(rdb, redisfleet.Options{Prefix: prefix})
		defer f.Close()
		rts[i] = resilient.Chain(dep, breakerStage(c)(f))
	}
	phases := []struct {
		name string
		flip func(elapsed time.Duration)
	}{
		{"healthy", func(time.Duration) { dep.down.Store(false) }},
		{"dead", func(time.Duration) { dep.down.Store(true) }},
		{"flapping (dead/healthy every " + (c.phase / 4).String() + ")", func(e time.Duration) { dep.down.Store(e/(c.phase/4)%2 == 0) }},
	}
	// Each instance learns the key once (one command each) before the
	// phases: that is start-up, not the cost of a call.
	req, _ := http.NewRequest(http.MethodGet, "http://dependency.sim/", nil)
	for _, rt := range rts {
		if resp, err := rt.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}
	time.Sleep(100 * time.Millisecond) // let the lookups land
	fmt.Fprintf(w, "  %-40s %10s %14s %16s\n", "phase", "calls/s", "Redis cmds/s", "cmds per call")
	for _, ph := range phases {
		before, err := commands(rdb)
		if err != nil {
			return err
		}
		calls := drive(rts, c, ph.flip)
		after, err := commands(rdb)
		if err != nil {
			return err
		}
		secs := c.phase.Seconds()
		cmds := float64(after - before - 1) // the first INFO counts itself
		fmt.Fprintf(w, "  %-40s %10.0f %14.0f %16.4f\n", ph.name, float64(calls)/secs, cmds/secs, cmds/float64(max(calls, 1)))
	}
	return nil
}

// drive calls the instances round-robin at c.simRate a second for
// c.phase, from four goroutines, calling flip every 10 ms tick.
func drive(rts []http.RoundTripper, c config, flip func(time.Duration)) int64 {
	const workers, tick = 4, 10 * time.Millisecond
	perTick := max(c.simRate*int(tick/time.Millisecond)/1000/workers, 1)
	var calls atomic.Int64
	var next atomic.Uint64
	start := time.Now()
	flip(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://dependency.sim/", nil)
			for t := time.Duration(0); t < c.phase; t += tick {
				if w == 0 {
					flip(t)
				}
				for range perTick {
					if resp, err := rts[next.Add(1)%uint64(len(rts))].RoundTrip(req); err == nil {
						resp.Body.Close()
					}
				}
				calls.Add(int64(perTick))
				time.Sleep(time.Until(start.Add(t + tick))) // keep the pace
			}
		})
	}
	wg.Wait()
	return calls.Load()
}

// commands reads total_commands_processed from INFO stats.
func commands(rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no total_commands_processed in INFO stats")
}
