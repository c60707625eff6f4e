package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
)

// Hostile servers against the standard pipeline over loopback TCP: each
// test bounds what the client reads, holds in memory and waits, with real
// measurements (bytes on the wire, heap in use, elapsed time) and bounds
// generous enough for a loaded machine yet far below what a client without
// the bound would reach.

// fastRetry retries at once, so the tests time the server, not the backoff.
var fastRetry = resilient.RetryPolicy{
	MaxAttempts:  3,
	InitialDelay: time.Millisecond,
	MaxDelay:     2 * time.Millisecond,
	Budget:       &resilient.RetryBudget{Unlimited: true},
}

func TestHostileHugeErrorBodyIsNotRead(t *testing.T) {
	const (
		bodySize int64 = 10 << 30 // what the server offers, per response
		// Per connection: the 64 KiB drain, the 1 KiB the caller reads,
		// plus what the two socket buffers took before the close. Reading
		// the body would be 10 GiB.
		maxWrittenPerConn = 16 << 20
		maxHeapGrowth     = 32 << 20
		drainLimit        = 64 << 10
		readSlack         = 32 << 10
	)
	srv := newHostileServer(t, func(s *hostileServer, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(bodySize, 10))
		w.WriteHeader(http.StatusServiceUnavailable)
		s.stream(w, r, bodySize)
	})
	base := newReadCountingTransport()
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: resilient.NewTransport(base,
		resilient.WithAttemptTimeout(5*time.Second),
		resilient.WithTotalTimeout(10*time.Second),
		resilient.WithRetry(fastRetry),
	)}

	heap := watchHeap()
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want the last 503 intact", resp.StatusCode)
	}
	n, err := io.CopyN(io.Discard, resp.Body, 1<<10)
	if err != nil || n != 1<<10 {
		t.Errorf("reading the last response's body: %d bytes, %v", n, err)
	}
	_ = resp.Body.Close()
	took := time.Since(start)
	growth := heap.growth()

	if !srv.awaitHandlers(5 * time.Second) {
		t.Fatal("the server still writes 5 s after the client closed every body")
	}
	conns, written := srv.conns.Load(), srv.written.Load()
	t.Logf("%d attempts on %d conns in %v: server wrote %.1f MiB (%.1f MiB per conn, of %d GiB offered), heap peak +%.1f MiB",
		fastRetry.MaxAttempts, conns, took.Round(time.Millisecond), mib(uint64(written)),
		mib(uint64(written))/float64(max(conns, 1)), bodySize>>30, mib(growth))
	if conns != int64(fastRetry.MaxAttempts) {
		t.Errorf("%d connections, want one per attempt (%d): a body not read to its end closes its connection",
			conns, fastRetry.MaxAttempts)
	}
	// A discarded body is drained to 64 KiB; reads overshoot by a buffer
	// or two (net/http's 4 KiB, io.Discard's 8 KiB) and the head.
	reads := base.perConn()
	t.Logf("client read per conn: %v bytes", reads)
	for i, n := range reads {
		limit := int64(drainLimit + readSlack)
		if i == len(reads)-1 {
			limit = 1<<10 + readSlack // the caller read 1 KiB of the last
		}
		if n > limit {
			t.Errorf("conn %d: client read %d bytes, want at most %d", i+1, n, limit)
		}
	}
	if written > conns*maxWrittenPerConn {
		t.Errorf("server wrote %.1f MiB, want at most %d MiB per connection: the client reads discarded bodies past the drain limit",
			mib(uint64(written)), maxWrittenPerConn>>20)
	}
	if growth > maxHeapGrowth {
		t.Errorf("heap grew by %.1f MiB during the call, want under %d MiB", mib(growth), maxHeapGrowth>>20)
	}
	if took > 5*time.Second {
		t.Errorf("call took %v, want well under the 5 s attempt timeout", took)
	}
}

func TestHostileRetryAfterNeverParks(t *testing.T) {
	const (
		total = 10 * time.Second // a parked call would take this long
		quick = 2 * time.Second
	)
	cases := []struct {
		name, retryAfter string
		status           int
	}{
		{"seconds past int64", "99999999999999999999", http.StatusServiceUnavailable},
		{"date in year 9999", "Fri, 31 Dec 9999 23:59:59 GMT", http.StatusTooManyRequests},
		{"seconds past MaxRetryAfter", strconv.Itoa(1 << 30), http.StatusTooManyRequests},
		{"within MaxRetryAfter, past the deadline", "20", http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newHostileServer(t, func(_ *hostileServer, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", c.retryAfter)
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, "come back later")
			})
			client := resilient.NewClient(resilient.WithTotalTimeout(total))
			defer client.CloseIdleConnections()

			start := time.Now()
			resp, err := client.Get(srv.URL)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Get after %v: %v", took, err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			t.Logf("Retry-After %q: %d after %v", c.retryAfter, resp.StatusCode, took.Round(time.Microsecond))
			if resp.StatusCode != c.status || err != nil || string(body) != "come back later" {
				t.Errorf("got %d %q (%v), want the %d and its body intact", resp.StatusCode, body, err, c.status)
			}
			if took > quick {
				t.Errorf("call took %v, want it back at once (under %v), not parked until the %v deadline", took, quick, total)
			}
			if !srv.awaitHandlers(quick) {
				t.Fatal("handler still running")
			}
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("%d connections, want 1: the first response ends the call", n)
			}
		})
	}
}

func TestHostileHeadersForever(t *testing.T) {
	const (
		// net/http stops reading a response head at
		// Transport.MaxResponseHeaderBytes, 10 MiB by default; the
		// socket buffers add a few more.
		maxWrittenPerConn = 32 << 20
		maxHeapGrowth     = 64 << 20
	)
	cases := []struct {
		name           string
		pace           time.Duration
		attemptTimeout time.Duration
		mustTimeOut    bool
	}{
		// As fast as the client takes them: the header limit ends each
		// attempt (or the attempt timeout, on a slow machine).
		{"flood", 0, 5 * time.Second, false},
		// A line every 10 ms never reaches the limit: the attempt
		// timeout must end each attempt.
		{"drip", 10 * time.Millisecond, 300 * time.Millisecond, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startHeaderFlood(t, c.pace)
			client := resilient.NewClient(
				resilient.WithAttemptTimeout(c.attemptTimeout),
				resilient.WithTotalTimeout(4*c.attemptTimeout),
				resilient.WithRetry(fastRetry),
			)
			defer client.CloseIdleConnections()

			heap := watchHeap()
			start := time.Now()
			resp, err := client.Get("http://" + srv.addr + "/")
			took := time.Since(start)
			growth := heap.growth()
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("got %d, want an error: the head never ends", resp.StatusCode)
			}
			conns, written := srv.conns.Load(), srv.written.Load()
			t.Logf("%d conns in %v: server wrote %.1f MiB of header, heap peak +%.1f MiB; error: %v",
				conns, took.Round(time.Millisecond), mib(uint64(written)), mib(growth), err)
			if c.mustTimeOut {
				var ne net.Error
				if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("error %v, want a timeout", err)
				}
			}
			if conns != int64(fastRetry.MaxAttempts) {
				t.Errorf("%d connections, want one per attempt (%d)", conns, fastRetry.MaxAttempts)
			}
			if written > conns*maxWrittenPerConn {
				t.Errorf("server wrote %.1f MiB of header, want at most %d MiB per connection",
					mib(uint64(written)), maxWrittenPerConn>>20)
			}
			if growth > maxHeapGrowth {
				t.Errorf("heap grew by %.1f MiB, want under %d MiB", mib(growth), maxHeapGrowth>>20)
			}
			if limit := 4*c.attemptTimeout + time.Second; took > limit {
				t.Errorf("call took %v, want it cut by the timeouts (under %v)", took, limit)
			}
		})
	}
}

func TestHostileStreamingRequestBodyIsSentOnceUnbuffered(t *testing.T) {
	const (
		bodySize      = 128 << 20
		maxHeapGrowth = 32 << 20 // a quarter of the body
	)
	received := make(chan int64, 4)
	srv := newHostileServer(t, func(_ *hostileServer, w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received <- n
		// A 503 asks for a retry the client must not make: it cannot
		// replay the body.
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	client := resilient.NewClient(resilient.WithRetry(fastRetry))
	defer client.CloseIdleConnections()

	body := &lazyBody{left: bodySize}
	req, err := http.NewRequest(http.MethodPost, srv.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = bodySize
	if req.GetBody != nil {
		t.Fatal("the request has a GetBody; the test needs a body that cannot be replayed")
	}

	heap := watchHeap()
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start)
	growth := heap.growth()
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	_ = resp.Body.Close()

	if !srv.awaitHandlers(5 * time.Second) {
		t.Fatal("handler still running")
	}
	close(received)
	var sends []int64
	for n := range received {
		sends = append(sends, n)
	}
	t.Logf("POST of %d MiB: %d send(s) %v in %v, body read %d MiB, heap peak +%.1f MiB",
		bodySize>>20, len(sends), sends, took.Round(time.Millisecond), body.read.Load()>>20, mib(growth))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want the 503 back, not retried", resp.StatusCode)
	}
	if len(sends) != 1 || sends[0] != bodySize {
		t.Errorf("server received %v, want the whole body exactly once", sends)
	}
	if r := body.read.Load(); r != bodySize {
		t.Errorf("%d bytes read from the body, want %d: read once, never re-read", r, bodySize)
	}
	if growth > maxHeapGrowth {
		t.Errorf("heap grew by %.1f MiB during the call, want under %d MiB: the body was buffered", mib(growth), maxHeapGrowth>>20)
	}
}
