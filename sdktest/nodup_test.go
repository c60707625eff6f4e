package sdktest

// Tests of issue 15's retry-safety rules ("Retry safety: never duplicate a
// write" in DESIGN.md) with real SDKs. They fail on the core code before
// that change lands: the injected key makes a timed-out POST "replayable",
// and a keyed server's 409 "in progress" is taken as the call's answer.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A server that ignores Idempotency-Key (GitHub, Kubernetes) and acts on a
// create at once but answers only after 600 ms, four attempt timeouts:
// the default pipeline must not create twice. Every arrival is a creation.
func TestNoDuplicateCreateOnKeyIgnoringServer(t *testing.T) {
	for _, c := range []struct {
		name   string
		create func(ctx context.Context, u string, rt http.RoundTripper) error
		ok     []resilienttest.Fault
	}{
		{"go-github/Issues.Create", githubSDK().write, githubSDK().ok},
		{"client-go/ConfigMaps.Create", kubeSDK().write, kubeSDK().ok},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := resilienttest.NewServer(t, append([]resilienttest.Fault{resilienttest.Latency(600 * time.Millisecond)}, c.ok...)...)
			base := &http.Transport{}
			t.Cleanup(base.CloseIdleConnections)
			// The default pipeline, with only the attempt timeout shortened.
			rt := resilient.NewTransport(base, resilient.WithAttemptTimeout(150*time.Millisecond))
			err := c.create(callCtx(t), srv.URL, rt)
			if n := srv.Count(); n != 1 {
				t.Errorf("server created %d objects, want 1 (call error: %v)", n, err)
			}
		})
	}
}

// stripeLike deduplicates by Idempotency-Key as Stripe does: the first
// request with a key does the work (taking work, and finishing it even if
// the client has gone), a request with the same key meanwhile gets 409
// idempotency_error, and one after it gets the stored answer.
type stripeLike struct {
	work time.Duration

	mu        sync.Mutex
	inFlight  map[string]bool // guarded by mu
	done      map[string]bool // guarded by mu
	creations int             // guarded by mu
	conflicts int             // guarded by mu
}

func newStripeLike(t *testing.T, work time.Duration) (*stripeLike, string) {
	s := &stripeLike{work: work, inFlight: map[string]bool{}, done: map[string]bool{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close) // waits for handlers still working
	return s, srv.URL
}

func (s *stripeLike) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	w.Header().Set("Content-Type", "application/json")
	s.mu.Lock()
	switch {
	case key == "":
		s.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	case s.done[key]:
		s.mu.Unlock()
		w.Header().Set("Idempotent-Replayed", "true")
		_, _ = w.Write([]byte(stripeCustomer))
		return
	case s.inFlight[key]:
		s.conflicts++
		s.mu.Unlock()
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":{"type":"idempotency_error","message":"There is currently another in-progress request using this Stripe idempotency key."}}`))
		return
	}
	s.inFlight[key] = true
	s.creations++
	s.mu.Unlock()

	// The work is bounded and ends whether or not the client stays.
	timer := time.NewTimer(s.work)
	<-timer.C

	s.mu.Lock()
	delete(s.inFlight, key)
	s.done[key] = true
	s.mu.Unlock()
	_, _ = w.Write([]byte(stripeCustomer))
}

func (s *stripeLike) counts() (creations, conflicts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creations, s.conflicts
}

func is409(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusConflict
}

// A hedged stripe-go create: the hedge's copy gets 409 while the first
// attempt works; the 409 must not win, the first attempt's customer must.
func TestNoDuplicateStripeHedgeNotAnswered409(t *testing.T) {
	t.Parallel()
	srv, u := newStripeLike(t, 300*time.Millisecond)
	rt := pipeline(t, resilient.WithHedge(resilient.HedgePolicy{
		Delay:  50 * time.Millisecond,
		Budget: &resilient.RetryBudget{Unlimited: true},
	}))
	c, err := stripeClient(u, rt).V1Customers.Create(callCtx(t), &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")})
	creations, conflicts := srv.counts()
	if err != nil {
		t.Fatalf("create: %v (creations %d, 409s %d); want the first attempt's customer", err, creations, conflicts)
	}
	if c.ID != "cus_1" || creations != 1 {
		t.Errorf("customer %q, creations %d; want cus_1, 1", c.ID, creations)
	}
}

// A stripe-go create whose first attempt outlives the attempt timeout: the
// retry arrives while the first is in flight and gets 409. The call must
// not end in that 409: it waits and asks again (and gets the customer), or
// returns the timeout that caused the retry.
func TestNoDuplicateStripeRetryNotAnswered409(t *testing.T) {
	t.Parallel()
	srv, u := newStripeLike(t, 400*time.Millisecond)
	rt := pipeline(t, resilient.WithAttemptTimeout(150*time.Millisecond))
	c, err := stripeClient(u, rt).V1Customers.Create(callCtx(t), &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")})
	creations, conflicts := srv.counts()
	switch {
	case is409(err):
		t.Fatalf("create ended in the retry's 409 (creations %d, 409s %d): %v", creations, conflicts, err)
	case err != nil && !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("create: %v; want the customer or the attempt timeout", err)
	case err == nil && c.ID != "cus_1":
		t.Errorf("customer %q, want cus_1", c.ID)
	}
	if creations != 1 {
		t.Errorf("creations %d, want 1", creations)
	}
	t.Logf("err %v, creations %d, 409s %d", err, creations, conflicts)
}
