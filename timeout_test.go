package resilient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

func clientWith(stages ...resilient.Middleware) *http.Client {
	tr := &http.Transport{}
	return &http.Client{Transport: resilient.Chain(tr, stages...)}
}

func assertTimeout(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%v is not a net.Error with Timeout() == true", err)
	}
	var te *resilient.TimeoutError
	if !errors.As(err, &te) {
		t.Errorf("%v does not wrap *resilient.TimeoutError", err)
	}
}

func TestTimeoutHungServer(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	c := clientWith(resilient.Timeout(50 * time.Millisecond))
	defer c.CloseIdleConnections()

	start := time.Now()
	resp, err := c.Get(srv.URL)
	if resp != nil {
		resp.Body.Close()
	}
	assertTimeout(t, err)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v, want about 50ms", el)
	}
}

func TestTimeoutStalledBodyIsCut(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.Stall(len("first part;")),
		resilienttest.Respond(http.StatusOK, "first part;never sent"))
	c := clientWith(resilient.Timeout(100 * time.Millisecond))
	defer c.CloseIdleConnections()

	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("headers should arrive in time: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	assertTimeout(t, err)
	if string(got) != "first part;" {
		t.Errorf("read %q before the cut, want the part that was sent", got)
	}
}

func TestTimeoutHealthyBodyReadsAfterCallerWaits(t *testing.T) {
	payload := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	srv := resilienttest.NewServer(t, resilienttest.Respond(http.StatusOK, payload))
	c := clientWith(resilient.Timeout(2 * time.Second))
	defer c.CloseIdleConnections()

	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Waiting before reading must not cut a body that is not stalled: the
	// wait is well inside the deadline, and the context lives until EOF.
	time.Sleep(50 * time.Millisecond)
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(got) != len(payload) || string(got) != payload {
		t.Fatalf("read %d bytes, want %d intact", len(got), len(payload))
	}
	if err := resp.Request.Context().Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("after EOF the attempt context should be released, Err() = %v", err)
	}
}

func TestTimeoutCallerDeadlineWins(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	c := clientWith(resilient.Timeout(time.Minute))
	defer c.CloseIdleConnections()

	took, err := getWithin(c, srv.URL, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	var te *resilient.TimeoutError
	if errors.As(err, &te) {
		t.Errorf("the caller's own deadline was reported as the stage's timeout: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("took %v, want the caller's 50ms, not the stage's minute", took)
	}
}

// getWithin GETs url with a caller's deadline d away, closes any body, and
// returns how long the call took and its error.
func getWithin(c *http.Client, url string, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	start := time.Now()
	resp, err := c.Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	return time.Since(start), err
}

func TestTimeoutCallerCancelIsNotATimeout(t *testing.T) {
	hung := resilienttest.Hang()
	srv := resilienttest.NewServer(t, hung)
	c := clientWith(resilient.Timeout(time.Minute))
	defer c.CloseIdleConnections()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	// Cancel once the request is held by the server, not before it is sent.
	awaitCtx, stopAwait := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopAwait()
	held := make(chan error, 1)
	go func() {
		held <- hung.Await(awaitCtx, 1)
		cancel()
	}()
	resp, err := c.Do(req)
	if werr := <-held; werr != nil {
		t.Fatalf("the request never reached the server: %v", werr)
	}
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a cancel was reported as a deadline: %v", err)
	}
}

// retryLoop stands in for a retry stage: it re-sends failed calls forever,
// so only a total timeout above it can end the call.
type retryLoop struct{ next http.RoundTripper }

func (r retryLoop) RoundTrip(req *http.Request) (*http.Response, error) {
	for i := 0; ; i++ {
		resp, err := r.next.RoundTrip(req)
		if err == nil || req.Context().Err() != nil || i > 1000 {
			return resp, err
		}
	}
}

func TestTotalTimeoutBoundsEveryAttempt(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Hang())
	loop := func(next http.RoundTripper) http.RoundTripper { return retryLoop{next} }
	c := clientWith(resilient.Timeout(300*time.Millisecond), loop, resilient.Timeout(50*time.Millisecond))
	defer c.CloseIdleConnections()

	start := time.Now()
	resp, err := c.Get(srv.URL)
	if resp != nil {
		resp.Body.Close()
	}
	assertTotalTimeout(t, err, time.Since(start), srv.Count(), 300*time.Millisecond)
}

// assertTotalTimeout checks that a call of several attempts ended with the
// total timeout's error, after about total.
func assertTotalTimeout(t *testing.T, err error, took time.Duration, attempts int, total time.Duration) {
	t.Helper()
	assertTimeout(t, err)
	var te *resilient.TimeoutError
	if errors.As(err, &te) && te.After != total {
		t.Errorf("reported the %v timeout, want the %v total that ran out", te.After, total)
	}
	if attempts < 2 {
		t.Errorf("server saw %d attempts, want several inside the total", attempts)
	}
	if took < total*5/6 || took > 5*time.Second {
		t.Errorf("took %v, want about the %v total", took, total)
	}
}

func TestTimeoutReleasesContextOnClose(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Respond(http.StatusOK, strings.Repeat("x", 1<<20)))
	c := clientWith(resilient.Timeout(time.Minute))
	defer c.CloseIdleConnections()

	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := resp.Request.Context()
	if ctx.Err() != nil {
		t.Fatalf("context ended before the body was read: %v", ctx.Err())
	}
	resp.Body.Close()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("closing the body did not end the attempt context")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("Err() = %v, want context.Canceled", ctx.Err())
	}
}

func TestTimeoutPanicsOnNonPositive(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "resilient: Timeout needs a positive duration") {
					t.Errorf("Timeout(%v) panic = %q, want a clear message", d, msg)
				}
			}()
			resilient.Timeout(d)
		}()
	}
}

// memTransport answers every request in memory with a small 200, as a fast
// transport that checks its context would.
type memTransport struct{}

func (memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader("ok")),
		Request:    req,
	}, nil
}

func benchRoundTrip(b *testing.B, rt http.RoundTripper) {
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkTimeout(b *testing.B) {
	b.Run("raw", func(b *testing.B) { benchRoundTrip(b, memTransport{}) })
	b.Run("timeout", func(b *testing.B) {
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.Timeout(time.Second)))
	})
	b.Run("total+attempt", func(b *testing.B) {
		benchRoundTrip(b, resilient.Chain(memTransport{}, resilient.Timeout(30*time.Second), resilient.Timeout(10*time.Second)))
	})
}

// TestTimeoutBodyNotReadByDeadlineIsCut pins what the doc says: the
// deadline bounds the caller's read too, so a body that had fully arrived
// but is read after the deadline ends with a *TimeoutError (after what
// net/http had already buffered), not with all its bytes.
func TestTimeoutBodyNotReadByDeadlineIsCut(t *testing.T) {
	payload := strings.Repeat("x", 16<<10)
	closed := make(chan struct{})
	var once sync.Once
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, payload)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			once.Do(func() { close(closed) })
		}
	}
	srv.Start()
	defer srv.Close()
	c := clientWith(resilient.Timeout(100 * time.Millisecond))
	defer c.CloseIdleConnections()

	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// No sleep: wait for the deadline, then for net/http to drop the
	// connection (the server sees it close), as it does on a deadline.
	for _, ch := range []<-chan struct{}{resp.Request.Context().Done(), closed} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the deadline did not end the connection")
		}
	}
	got, err := io.ReadAll(resp.Body)
	assertTimeout(t, err)
	if len(got) >= len(payload) {
		t.Errorf("read all %d bytes after the deadline, want the read cut", len(got))
	}
	t.Logf("read %d of %d bytes, then %v", len(got), len(payload), err)
}
