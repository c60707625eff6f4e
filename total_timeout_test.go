package resilient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
)

// TestTotalTimeoutBoundsTheWaitForASlot: calls queued for the adaptive
// limit of a host that hangs give up at the pipeline's total timeout, also
// on their first attempt. Before, the Retry stage enforced the total only
// from the second attempt, which a queue for the limit can delay past it:
// the soak saw 1.1 s calls under a 400 ms total.
func TestTotalTimeoutBoundsTheWaitForASlot(t *testing.T) {
	const total = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // hangs until the client gives up
	}))
	defer srv.Close()
	c := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport,
		resilient.WithTotalTimeout(total),
		resilient.WithAttemptTimeout(total),
		resilient.WithBulkhead(resilient.BulkheadPolicy{
			InitialConcurrent: 1, MinConcurrent: 1, AdaptiveMaxWait: 5 * time.Second,
		}),
	)}
	defer c.CloseIdleConnections()

	var mu sync.Mutex
	var slowest time.Duration
	var wg sync.WaitGroup
	for range 4 { // one holds the slot, three queue behind it
		wg.Go(func() {
			start := time.Now()
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
				t.Error("a call to a hung host got a response")
			}
			mu.Lock()
			slowest = max(slowest, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	// Queued one after another, each for an attempt of 300 ms, the last
	// would end after 1.2 s.
	if slowest > 2*total {
		t.Errorf("slowest call took %v, want about the total timeout, %v", slowest, total)
	}
}
