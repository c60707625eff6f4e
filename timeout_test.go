package resilient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
)

// newServer starts a loopback test server that is closed at cleanup.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// hang blocks a handler until the client goes away or the test ends.
func hang(t *testing.T) http.HandlerFunc {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

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
	srv := newServer(t, hang(t))
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
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first part;"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
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
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, payload)
	})
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
