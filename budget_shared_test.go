package resilient_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// TestSharedBudgetCountsACallOnce: one budget shared by Retry and Hedge in
// one Chain earns a call's share once, so a total outage stays at about
// 1.2 requests a call. On the old code each stage counted the call: 1.4.
func TestSharedBudgetCountsACallOnce(t *testing.T) {
	b := &resilient.RetryBudget{MinPerSecond: 1}
	tr := resilienttest.NewTransport(resilienttest.Status(503))
	rt := resilient.Chain(tr,
		resilient.Retry(resilient.RetryPolicy{Budget: b, InitialDelay: time.Nanosecond, MaxDelay: time.Nanosecond}),
		resilient.Hedge(resilient.HedgePolicy{Budget: b, Delay: time.Hour}))
	const calls = 2000
	for range calls {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://api.test/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	perCall := float64(tr.Count()) / calls
	t.Logf("%d requests for %d calls: %.3f a call", tr.Count(), calls, perCall)
	if perCall > 1.22 {
		t.Errorf("%.3f requests a call with a shared budget, want at most about 1.2", perCall)
	}
}
