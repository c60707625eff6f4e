package resilienttest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient/resilienttest"
)

func TestAwaitAbandonedEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := resilienttest.Hang().AwaitAbandoned(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestInFlight(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		h := resilienttest.Hang()
		f := start(t, resilienttest.OnPath("/hang", h))
		if n, p := f.rec.InFlight(), f.rec.PeakInFlight(); n != 0 || p != 0 {
			t.Errorf("before any request: InFlight %d, PeakInFlight %d", n, p)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { get(t, f, "/hang") })
		}
		await(t, h, 3)
		if n, p := f.rec.InFlight(), f.rec.PeakInFlight(); n != 3 || p != 3 {
			t.Errorf("3 held: InFlight %d, PeakInFlight %d; want 3, 3", n, p)
		}
		h.Release()
		wg.Wait()
		// A client holding its whole response never sees it in flight.
		if n, p := f.rec.InFlight(), f.rec.PeakInFlight(); n != 0 || p != 3 {
			t.Errorf("after: InFlight %d, PeakInFlight %d; want 0, 3", n, p)
		}
		get(t, f, "/")
		if p := f.rec.PeakInFlight(); p != 3 {
			t.Errorf("PeakInFlight() = %d after one more call, want still 3", p)
		}
	})
}

func TestInFlightUntilBodyIsOut(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t,
			resilienttest.OnPath("/drip", resilienttest.Drip(2, 5*time.Millisecond)),
			resilienttest.Respond(200, "abcdef"))

		// An unread body that was sent whole is out: not in flight.
		resp, err := f.client.Get(f.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		if n := f.rec.InFlight(); n != 0 {
			t.Errorf("InFlight() = %d with a whole body unread, want 0", n)
		}
		resp.Body.Close()

		// A dripped body is in flight until its last piece.
		resp, err = f.client.Get(f.url + "/drip")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if n := f.rec.InFlight(); n != 1 {
			t.Errorf("InFlight() = %d while the body drips, want 1", n)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "abcdef" {
			t.Fatalf("read %q, %v", b, err)
		}
		if n := f.rec.InFlight(); n != 0 {
			t.Errorf("InFlight() = %d after the last piece, want 0", n)
		}
	})
}

func TestInFlightEndsOnError(t *testing.T) {
	tr := resilienttest.NewTransport(
		resilienttest.OnRequests(1, 1, resilienttest.ResetConn()),
		resilienttest.OnRequests(2, 2, resilienttest.Latency(time.Hour)),
		resilienttest.Drip(1, time.Hour))
	c := &http.Client{Transport: tr}
	if _, err := c.Get("http://fake.test/"); err == nil {
		t.Fatal("request 1: no error, want a reset")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.RoundTrip(mustRequest(t, "GET").WithContext(ctx)); err == nil {
		t.Fatal("a cancelled request got a response")
	}
	// Request 2: the client gives up during Latency.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := tr.RoundTrip(mustRequest(t, "GET").WithContext(ctx)); err == nil {
		t.Fatal("request 2: no error, want the deadline")
	}
	// Request 3: a dripping body closed early.
	resp, err := c.Get("http://fake.test/")
	if err != nil {
		t.Fatal(err)
	}
	if n := tr.InFlight(); n != 1 {
		t.Errorf("InFlight() = %d while the body drips, want 1", n)
	}
	resp.Body.Close()
	resp.Body.Close()
	if n, p := tr.InFlight(), tr.PeakInFlight(); n != 0 || p != 1 {
		t.Errorf("InFlight %d, PeakInFlight %d after every call ended; want 0, 1", n, p)
	}
}

func TestOpenBodies(t *testing.T) {
	tr := resilienttest.NewTransport(
		resilienttest.OnRequests(3, 3, resilienttest.ResetConn()),
		resilienttest.OnRequests(4, 4, resilienttest.Status(http.StatusNoContent)),
		resilienttest.OnRequests(5, 5, resilienttest.Stall(1)))
	c := &http.Client{Transport: tr}
	first, err := c.Get("http://fake.test/")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Get("http://fake.test/")
	if err != nil {
		t.Fatal(err)
	}
	if n := tr.OpenBodies(); n != 2 {
		t.Errorf("OpenBodies() = %d with two bodies handed out, want 2", n)
	}
	// Read to the end is not closed.
	if _, err := io.ReadAll(first.Body); err != nil {
		t.Fatal(err)
	}
	if n := tr.OpenBodies(); n != 2 {
		t.Errorf("OpenBodies() = %d after a body was read to the end, want still 2", n)
	}
	first.Body.Close()
	first.Body.Close() // a second Close counts nothing
	if n := tr.OpenBodies(); n != 1 {
		t.Errorf("OpenBodies() = %d after one Close, want 1", n)
	}
	second.Body.Close()

	// No body to close: an error, a 204, a HEAD.
	if _, err := c.Get("http://fake.test/"); err == nil {
		t.Fatal("request 3: no error, want a reset")
	}
	for i, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, "http://fake.test/", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Body != http.NoBody {
			t.Errorf("request %d: %s %d got a body", 4+i, method, resp.StatusCode)
		}
	}
	if n := tr.OpenBodies(); n != 0 {
		t.Errorf("OpenBodies() = %d after responses without a body, want 0", n)
	}
}
