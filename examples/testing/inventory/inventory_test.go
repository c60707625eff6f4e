package inventory_test

// These tests show how to test code that calls a dependency through
// resilient: script the dependency's failures with resilienttest, call your
// code, then check both what your code returned and what the dependency
// received.

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/examples/testing/inventory"
	"github.com/resilient-go/resilient/resilienttest"
)

// fast shortens the client's timeouts: a hung service then costs a test
// 100 ms, not the 2 s the client waits in production.
var fast = []resilient.Option{
	resilient.WithAttemptTimeout(100 * time.Millisecond),
	resilient.WithTotalTimeout(3 * time.Second),
}

// newClient returns a client for srv with the fast timeouts and opts, closed
// when the test ends.
func newClient(t *testing.T, srv *resilienttest.Server, opts ...resilient.Option) *inventory.Client {
	t.Helper()
	c := inventory.New(srv.URL, nil, append(fast, opts...)...)
	t.Cleanup(c.Close)
	return c
}

// bounded returns a context for one call that ends with the test or after
// 5 s: a client that stops honouring its timeouts then fails the test
// instead of hanging it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const (
	reserved = `{"id":"res_1","sku":"cup-1","quantity":2}`
	stock7   = `{"sku":"cup-1","available":7}`
)

// A POST is retried only because it carries an idempotency key, and every
// attempt carries the same one: the service can tell the copies apart from
// a second reservation.
func TestReserveRetriesUnderOneIdempotencyKey(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.FailFirst(2, http.StatusServiceUnavailable),
		resilienttest.Respond(http.StatusCreated, reserved),
	)

	r, err := newClient(t, srv).Reserve(bounded(t), "cup-1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "res_1" {
		t.Errorf("reservation %+v, want res_1", r)
	}

	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("service received %d requests, want 3 (two 503s, then success)", len(reqs))
	}
	key := reqs[0].Header.Get("Idempotency-Key")
	if key == "" {
		t.Fatal("the first attempt carried no Idempotency-Key")
	}
	for _, req := range reqs {
		if got := req.Header.Get("Idempotency-Key"); got != key {
			t.Errorf("attempt %d: Idempotency-Key %q, want %q", req.N, got, key)
		}
		if got, want := string(req.Body), `{"quantity":2,"sku":"cup-1"}`; got != want {
			t.Errorf("attempt %d: body %s, want %s", req.N, got, want)
		}
	}
}

// A service that answers 429 with Retry-After gets the pause it asked for.
func TestReserveWaitsAsRetryAfterAsks(t *testing.T) {
	t.Parallel() // it waits a second
	srv := resilienttest.NewServer(t,
		resilienttest.RetryAfter(time.Second),
		resilienttest.FailFirst(1, http.StatusTooManyRequests),
		resilienttest.Respond(http.StatusCreated, reserved),
	)

	if _, err := newClient(t, srv).Reserve(bounded(t), "cup-1", 2); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("service received %d requests, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried after %v, want at least the 1s Retry-After asked for", gap)
	}
}

// A Retry-After longer than the call may last is not waited for: the call
// ends at once with the service's answer.
func TestReserveGivesUpOnALongRetryAfter(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.RetryAfter(time.Hour),
		resilienttest.Status(http.StatusServiceUnavailable),
	)

	start := time.Now()
	_, err := newClient(t, srv).Reserve(bounded(t), "cup-1", 2)
	if !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("service received %d requests, want 1", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Reserve took %v, want an answer at once", d)
	}
}

// A refusal is an answer, not a failure: it is not retried.
func TestReserveOutOfStockIsNotRetried(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Respond(http.StatusConflict, `{"error":"out of stock"}`))

	_, err := newClient(t, srv).Reserve(bounded(t), "cup-1", 2)
	if !errors.Is(err, inventory.ErrOutOfStock) {
		t.Fatalf("err = %v, want ErrOutOfStock", err)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("service received %d requests, want 1", n)
	}
}

// A hung request is cut off after the attempt timeout and sent again.
func TestStockCutsOffAHungRequest(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.OnRequests(1, 1, resilienttest.Hang()),
		resilienttest.Respond(http.StatusOK, stock7),
	)

	start := time.Now()
	lvl, err := newClient(t, srv).Stock(bounded(t), "cup-1")
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if lvl.Available != 7 || lvl.Stale {
		t.Errorf("level %+v, want 7 available, fresh", lvl)
	}
	if n := srv.Count(); n != 2 {
		t.Errorf("service received %d requests, want 2 (the hung one, then the retry)", n)
	}
	if elapsed < 100*time.Millisecond || elapsed > 2500*time.Millisecond {
		t.Errorf("Stock took %v, want the 100ms attempt timeout plus a short backoff", elapsed)
	}
}

// When the service fails, Stock answers with the last level it saw, marked
// stale.
func TestStockServesTheLastLevelWhenTheServiceFails(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.After(1, resilienttest.Status(http.StatusInternalServerError)),
		resilienttest.Respond(http.StatusOK, stock7),
	)
	c := newClient(t, srv)

	fresh, err := c.Stock(bounded(t), "cup-1")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Stale {
		t.Errorf("first level %+v is stale, want fresh", fresh)
	}

	stale, err := c.Stock(bounded(t), "cup-1")
	if err != nil {
		t.Fatalf("with the service failing: %v, want the last level", err)
	}
	if stale.Available != 7 || !stale.Stale {
		t.Errorf("level %+v, want 7 available, stale", stale)
	}
	if n := srv.Count(); n != 4 {
		t.Errorf("service received %d requests, want 4 (one good, then three attempts)", n)
	}

	if _, err := c.Stock(bounded(t), "saucer-2"); !errors.Is(err, inventory.ErrUnavailable) {
		t.Errorf("an item never seen: err = %v, want ErrUnavailable", err)
	}
}

// After a run of failures the breaker opens: later calls fail at once and
// the dead service is left alone.
func TestBreakerLeavesADeadServiceAlone(t *testing.T) {
	srv := resilienttest.NewServer(t, resilienttest.Status(http.StatusServiceUnavailable))
	c := newClient(t, srv,
		resilient.WithRetry(resilient.RetryPolicy{MaxAttempts: 1}), // one request per call
		resilient.WithBreaker(resilient.BreakerPolicy{ConsecutiveFailures: 3, OpenTimeout: time.Minute}),
	)

	for i := range 3 {
		if _, err := c.Stock(bounded(t), "cup-1"); errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("call %d: breaker already open", i+1)
		}
	}
	_, err := c.Stock(bounded(t), "cup-1")
	if !errors.Is(err, resilient.ErrCircuitOpen) || !errors.Is(err, inventory.ErrUnavailable) {
		t.Fatalf("after 3 failures: err = %v, want ErrUnavailable with ErrCircuitOpen", err)
	}
	if n := srv.Count(); n != 3 {
		t.Errorf("service received %d requests, want 3: none once the breaker is open", n)
	}
}

// resilienttest.NewTransport runs the same faults in memory, without
// sockets: here a connection reset, after which the reservation is sent
// again under the same key.
func TestReserveAfterAConnectionResetInMemory(t *testing.T) {
	tr := resilienttest.NewTransport(
		resilienttest.OnRequests(1, 1, resilienttest.ResetConn()),
		resilienttest.Respond(http.StatusCreated, reserved),
	)
	c := inventory.New("http://inventory.test", tr, fast...)

	if _, err := c.Reserve(bounded(t), "cup-1", 2); err != nil {
		t.Fatal(err)
	}
	reqs := tr.Requests()
	if len(reqs) != 2 {
		t.Fatalf("service received %d requests, want 2", len(reqs))
	}
	if k0, k1 := reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"); k0 == "" || k0 != k1 {
		t.Errorf("Idempotency-Keys %q and %q, want one key on both attempts", k0, k1)
	}
}
