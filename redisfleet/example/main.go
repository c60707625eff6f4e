// Command example runs a fleet of resilient clients against a dead
// dependency and a shared quota, alone and with redisfleet, in one process
// and in several OS processes (it re-executes itself), then simulates a
// large fleet and prints the Redis commands a second it costs.
//
// It starts its own redis-server on a loopback port unless -redis names
// one. Everything stays on 127.0.0.1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

// config is the example's scale; flags set it, the test shrinks it.
type config struct {
	redis     string        // Redis address; empty: start one
	instances int           // instances in the in-process fleet
	procs     int           // OS processes in the multi-process run
	open      time.Duration // the breakers' OpenTimeout
	simN      int           // simulated instances
	simRate   int           // their combined calls a second
	phase     time.Duration // each simulation phase
}

func main() {
	var c config
	child := flag.Bool("child", false, "run as one process of the multi-process fleet")
	dep := flag.String("dep", "", "child: the dependency's URL")
	useFleet := flag.Bool("fleet", true, "child: share state through Redis")
	prefix := flag.String("prefix", "example", "child: the fleet's key prefix")
	flag.StringVar(&c.redis, "redis", "", "Redis address (empty: start redis-server on a free loopback port)")
	flag.IntVar(&c.instances, "instances", 40, "instances in the in-process fleet")
	flag.IntVar(&c.procs, "procs", 4, "OS processes in the multi-process run (instances are split among them)")
	flag.DurationVar(&c.open, "open", time.Second, "the breakers' open timeout")
	flag.IntVar(&c.simN, "sim", 1000, "simulated instances (one Fleet each)")
	flag.IntVar(&c.simRate, "sim-rate", 20000, "their combined calls a second")
	flag.DurationVar(&c.phase, "phase", 2*time.Second, "each simulation phase")
	flag.Parse()
	if *child {
		if err := runChild(c, *dep, *prefix, *useFleet); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(w io.Writer, c config) error {
	if c.redis == "" {
		addr, stop, err := startRedis()
		if err != nil {
			return err
		}
		defer stop()
		c.redis = addr
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.redis, ContextTimeoutEnabled: true, PoolSize: 64})
	defer rdb.Close()

	fmt.Fprintf(w, "in one process: %d instances, each its own Redis client, Fleet and pipeline\n", c.instances)
	var rows [][3]string
	for _, shared := range []bool{false, true} {
		learn, probes, err := deadDependency(c, c.instances, "inproc", shared)
		if err != nil {
			return err
		}
		quota, err := sharedQuota(c, shared)
		if err != nil {
			return err
		}
		rows = append(rows, [3]string{strconv.FormatInt(learn, 10), fmt.Sprintf("%.1f", probes), strconv.FormatInt(quota, 10)})
	}
	table(w, []string{"requests to learn", "probes per interval", "requests under a shared 50/s quota, 2 s (110)"}, rows)

	if c.procs == 0 {
		fmt.Fprintln(w, "\n(no multi-process run)")
	} else if err := multiProcessTable(w, c); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nsimulation: %d instances (one Fleet each, one shared redis.Client pool), %d calls/s in all\n", c.simN, c.simRate)
	return simulate(w, c, rdb)
}

func multiProcessTable(w io.Writer, c config) error {
	fmt.Fprintf(w, "\nin %d OS processes, %d instances in all, one Redis\n", c.procs, c.instances)
	var rows [][3]string
	for _, shared := range []bool{false, true} {
		learn, probes, err := multiProcess(c, shared)
		if err != nil {
			return err
		}
		rows = append(rows, [3]string{strconv.FormatInt(learn, 10), fmt.Sprintf("%.1f", probes), "-"})
	}
	table(w, []string{"requests to learn", "probes per interval", ""}, rows)
	return nil
}

func table(w io.Writer, head []string, rows [][3]string) {
	fmt.Fprintf(w, "  %-46s %12s %12s\n", "", "alone", "with fleet")
	for i, h := range head {
		if h != "" {
			fmt.Fprintf(w, "  %-46s %12s %12s\n", h, rows[0][i], rows[1][i])
		}
	}
}

// startRedis runs redis-server without persistence on a free loopback port.
func startRedis() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting redis-server (apt-get install redis-server): %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for range 500 {
		if c.Ping(context.Background()).Err() == nil {
			return addr, stop, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	return "", nil, errors.New("redis-server did not answer within 5s")
}

// dependency is a loopback server that answers 503 while down.
type dependency struct {
	*httptest.Server
	down atomic.Bool
	hits atomic.Int64
}

func newDependency(down bool) *dependency {
	d := &dependency{}
	d.down.Store(down)
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		d.hits.Add(1)
		if d.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	return d
}

// fleet is n instances, each its own client, Fleet (if shared) and pipeline.
type fleet struct {
	rts     []http.RoundTripper
	closers []func()
}

func newFleet(c config, n int, prefix string, shared bool, stage func(resilient.Fleet) resilient.Middleware) *fleet {
	fl := &fleet{}
	for range n {
		tr := &http.Transport{}
		var f resilient.Fleet
		if shared {
			rdb := redis.NewClient(&redis.Options{Addr: c.redis, ContextTimeoutEnabled: true, PoolSize: 2})
			rf := redisfleet.New(rdb, redisfleet.Options{Prefix: prefix})
			f = rf
			fl.closers = append(fl.closers, func() { rf.Close(); rdb.Close() })
		}
		fl.closers = append(fl.closers, tr.CloseIdleConnections)
		fl.rts = append(fl.rts, resilient.Chain(tr, stage(f)))
	}
	return fl
}

func (fl *fleet) close() {
	for _, c := range fl.closers {
		c()
	}
}

func call(rt http.RoundTripper, url string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if resp, err := rt.RoundTrip(req); err == nil {
		resp.Body.Close()
	}
}

// every has each instance call url every 20 ms for d.
func (fl *fleet) every(url string, d time.Duration) {
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for _, rt := range fl.rts {
		wg.Go(func() {
			for time.Now().Before(stop) {
				call(rt, url)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// learnFor is how long the dead dependency's first requests count as
// learning: a local breaker trips after 5 failures 20 ms apart.
const learnFor = 500 * time.Millisecond

func breakerStage(c config) func(resilient.Fleet) resilient.Middleware {
	return func(f resilient.Fleet) resilient.Middleware {
		return resilient.CircuitBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 5, OpenTimeout: c.open, Fleet: f})
	}
}

// deadDependency counts the requests a dead dependency sees while n
// instances learn it is dead, then its probes per open interval (three).
func deadDependency(c config, n int, prefix string, shared bool) (learn int64, probes float64, err error) {
	dep := newDependency(true)
	defer dep.Close()
	fl := newFleet(c, n, fmt.Sprintf("%s-%v-%d", prefix, shared, time.Now().UnixNano()), shared, breakerStage(c))
	defer fl.close()
	fl.every(dep.URL, learnFor)
	learn = dep.hits.Load()
	fl.every(dep.URL, 3*c.open)
	return learn, float64(dep.hits.Load()-learn) / 3, nil
}

// sharedQuota: 5 instances, 4 goroutines each, for 2 s under 50/s, burst 10.
func sharedQuota(c config, shared bool) (int64, error) {
	dep := newDependency(false)
	defer dep.Close()
	fl := newFleet(c, 5, fmt.Sprintf("quota-%d", time.Now().UnixNano()), shared, func(f resilient.Fleet) resilient.Middleware {
		return resilient.RateLimit(resilient.RateLimitPolicy{Rate: 50, Burst: 10, Fleet: f})
	})
	defer fl.close()
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	for _, rt := range fl.rts {
		for range 4 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					call(rt, dep.URL)
					time.Sleep(2 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	return dep.hits.Load(), nil
}

// multiProcess runs the dead-dependency scenario in c.procs child
// processes (this program, re-executed) sharing one dependency and Redis.
func multiProcess(c config, shared bool) (learn int64, probes float64, err error) {
	dep := newDependency(true)
	defer dep.Close()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	prefix := fmt.Sprintf("procs-%d", time.Now().UnixNano())
	per := max(c.instances/c.procs, 1)
	cmds := make([]*exec.Cmd, c.procs)
	for i := range cmds {
		cmds[i] = exec.Command(self, "-child", "-dep", dep.URL, "-redis", c.redis, "-prefix", prefix,
			"-fleet="+strconv.FormatBool(shared), "-instances", strconv.Itoa(per), "-open", c.open.String())
		cmds[i].Stderr = os.Stderr
		if err := cmds[i].Start(); err != nil {
			return 0, 0, err
		}
	}
	// The children start together; learning is what reaches the
	// dependency in their first learnFor.
	start := time.Now()
	for dep.hits.Load() == 0 && time.Since(start) < 10*time.Second {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(learnFor)
	learn = dep.hits.Load()
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			return 0, 0, fmt.Errorf("child: %w", err)
		}
	}
	return learn, float64(dep.hits.Load()-learn) / 3, nil
}

func runChild(c config, url, prefix string, shared bool) error {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return errors.New("child: -dep must be a loopback URL")
	}
	fl := newFleet(c, c.instances, prefix, shared, breakerStage(c))
	defer fl.close()
	fl.every(url, learnFor+3*c.open)
	return nil
}
