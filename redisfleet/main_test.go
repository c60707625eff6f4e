package redisfleet_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/redisfleet"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	// go-redis logs every refused dial; the outage test makes many.
	redis.SetLogger(quiet{})
	// go-redis redials in the background after a refused dial, and that
	// goroutine notices a closed client only after its 1 s sleep: the
	// client's, not ours.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// redisServer is a real redis-server on a free loopback port, without
// persistence, stopped when the test ends.
type redisServer struct {
	t    testing.TB
	addr string
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{t: t, addr: l.Addr().String()}
	l.Close()
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not answer within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops the server at once, as a crash would.
func (s *redisServer) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// freeze stops the server without closing its sockets: every command hangs.
func (s *redisServer) freeze(on bool) {
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	_ = s.cmd.Process.Signal(sig)
}

// client is a fresh client, closed when the test ends.
func (s *redisServer) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: s.addr, ContextTimeoutEnabled: true, DialTimeout: 100 * time.Millisecond,
		PoolSize: 4, MaxRetries: -1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// commands is the server's total_commands_processed.
func (s *redisServer) commands(t testing.TB) int64 {
	c := s.client(t)
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_commands_processed in INFO stats")
	return 0
}

// dependency is a loopback HTTP server that answers 503 while down and
// counts the requests that reach it.
type dependency struct {
	*httptest.Server
	down atomic.Bool
	hits atomic.Int64
}

func newDependency(t testing.TB, down bool) *dependency {
	d := &dependency{}
	d.down.Store(down)
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		d.hits.Add(1)
		if d.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(d.Close)
	return d
}

// instance is one process of a fleet: its own Redis client, Fleet and
// pipeline.
type instance struct {
	fleet *redisfleet.Fleet
	rt    http.RoundTripper
}

func newInstance(t testing.TB, s *redisServer, opts redisfleet.Options, base http.RoundTripper, stages ...func(resilient.Fleet) resilient.Middleware) *instance {
	f := redisfleet.New(s.client(t), opts)
	t.Cleanup(func() { f.Close() })
	if base == nil {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		base = tr
	}
	mws := make([]resilient.Middleware, len(stages))
	for i, st := range stages {
		mws[i] = st(f)
	}
	return &instance{fleet: f, rt: resilient.Chain(base, mws...)}
}

func breakerStage(p resilient.BreakerPolicy) func(resilient.Fleet) resilient.Middleware {
	return func(f resilient.Fleet) resilient.Middleware {
		p.Fleet = f
		return resilient.CircuitBreaker(p)
	}
}

// call sends one GET and reports the error, if any.
func (in *instance) call(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := in.rt.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return errStatus(resp.StatusCode)
	}
	return nil
}

type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }
