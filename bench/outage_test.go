package bench

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// failedCall is the configuration of a call that fails every attempt:
// exactly maxAttempts attempts with next to no backoff, and no breaker or
// budget to cut them short.
var failedCall = cfg{fastBackoff: true, noBreaker: true, noBudget: true}

// countingTransport counts the attempts that reach next.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

// BenchmarkFailedCall is a GET that gets 503 on every attempt: what
// giving up costs, how many attempts reach the server (attempts/op, 3 in
// every library) and how many new TCP connections each call opens
// (conns/op): a library that closes a retried response unread, or flushes
// the pool when it gives up, dials again.
func BenchmarkFailedCall(b *testing.B) {
	libs := append([]lib{libResilient}, peers...)
	for _, tr := range []string{"mem", "loopback"} {
		for _, l := range libs {
			b.Run(fmt.Sprintf("transport=%s/lib=%s", tr, l.name), func(b *testing.B) {
				var attempts atomic.Int64
				var base http.RoundTripper = countingTransport{memTransport{http.StatusServiceUnavailable}, &attempts}
				url := "http://example.test/"
				var srv *server
				if tr == "loopback" {
					srv = newServer(b, serverOpts{status: http.StatusServiceUnavailable})
					base, url = countingTransport{srv.client, &attempts}, srv.URL
				}
				rt := l.wrap(base, failedCall)
				if rt == nil {
					b.Skip("not configurable yet")
				}
				req := newGet(b, url)
				b.ReportAllocs()
				for b.Loop() {
					if st, err := do(rt, req); err != nil || st != http.StatusServiceUnavailable {
						b.Fatalf("got %d, %v; want the last 503", st, err)
					}
				}
				perCall(b, attempts.Load(), "attempts/op")
				if srv != nil {
					perCall(b, srv.conns.Load(), "conns/op")
				}
			})
		}
	}
}

// openBreaker fails calls through rt until its breaker rejects one.
// hystrix counts asynchronously, hence the short sleeps once the
// threshold has been reached.
func openBreaker(tb testing.TB, rt http.RoundTripper, req *http.Request) {
	tb.Helper()
	for i := range 1000 {
		if _, err := do(rt, req); isOpen(err) {
			return
		}
		if i >= breakerTrip {
			time.Sleep(time.Millisecond)
		}
	}
	tb.Fatal("the breaker never opened")
}

// BenchmarkBreakerOpen is a call rejected by an open breaker: through the
// library's whole configuration (scope=pipeline) and through its breaker
// alone (scope=breaker). go-retryablehttp has no breaker.
func BenchmarkBreakerOpen(b *testing.B) {
	libs := []lib{libResilient, libFailsafe, libHeimdall}
	scopes := []struct {
		name string
		c    cfg
	}{
		{"pipeline", cfg{fastBackoff: true}},
		{"breaker", cfg{breakerOnly: true}},
	}
	for _, s := range scopes {
		for _, l := range libs {
			b.Run(fmt.Sprintf("scope=%s/lib=%s", s.name, l.name), func(b *testing.B) {
				rt := l.wrap(memTransport{http.StatusServiceUnavailable}, s.c)
				if rt == nil {
					b.Skip("not configurable yet")
				}
				req := newGet(b, "http://example.test/")
				openBreaker(b, rt, req)
				b.ReportAllocs()
				for b.Loop() {
					resp, err := rt.RoundTrip(req)
					if resp != nil || !isOpen(err) {
						b.Fatalf("got %v, %v; want a breaker's rejection", resp, err)
					}
				}
			})
		}
	}
}

// amplificationCallers is how many callers call a dead dependency at once.
const amplificationCallers = 50

// BenchmarkAmplification is a total outage: 50 callers call a server that
// answers 503 to everything. reqs/op is how many requests reach it per
// logical call: 3 for a library that always retries, about 1.2 with a
// retry budget, less once a breaker opens.
func BenchmarkAmplification(b *testing.B) {
	libs := append([]lib{libResilient}, peers...)
	for _, breaker := range []string{"on", "off"} {
		for _, l := range libs {
			b.Run(fmt.Sprintf("breaker=%s/lib=%s", breaker, l.name), func(b *testing.B) {
				srv := newServer(b, serverOpts{status: http.StatusServiceUnavailable})
				rt := l.wrap(srv.client, cfg{fastBackoff: true, noBreaker: breaker == "off"})
				if rt == nil {
					b.Skip("not configurable yet")
				}
				b.ReportAllocs()
				setGoroutines(b, amplificationCallers)
				b.RunParallel(func(pb *testing.PB) {
					req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
					for pb.Next() {
						if st, err := do(rt, req); err == nil && st != http.StatusServiceUnavailable {
							b.Errorf("got %d; want 503 or an error", st)
							return
						}
					}
				})
				perCall(b, srv.requests.Load(), "reqs/op")
				perCall(b, srv.conns.Load(), "conns/op")
			})
		}
	}
}
