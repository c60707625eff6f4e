package resilient_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// TestTimeoutErrorSaysWhich: the error names the timeout that fired
// (attempt or total), whether the headers had come, and the host. On the
// old code it said "timed out after 100ms" and nothing more.
func TestTimeoutErrorSaysWhich(t *testing.T) {
	hang := resilienttest.Hang()
	defer hang.Release()
	srv := resilienttest.NewServer(t, resilienttest.OnPath("/hang", hang), resilienttest.OnPath("/stall", resilienttest.Stall(3), resilienttest.Respond(200, "0123456789")))
	c := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport,
		resilient.WithAttemptTimeout(100*time.Millisecond), resilient.WithTotalTimeout(150*time.Millisecond),
		resilient.WithRetry(resilient.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}),
		resilient.Without(resilient.StageTracing))}
	defer c.CloseIdleConnections()
	authority := "http://" + strings.TrimPrefix(srv.URL, "http://")

	_, err := c.Get(srv.URL + "/hang")
	var te *resilient.TimeoutError
	if !errors.As(err, &te) || te.Which != "total" || te.InBody || te.Authority != authority {
		t.Fatalf("hung twice: %v (%+v); want the total timeout, waiting for the response, of %s", err, te, authority)
	}
	if !strings.Contains(err.Error(), "total timed out after 150ms waiting for the response of "+authority) {
		t.Errorf("message %q", err)
	}

	resp, err := c.Get(srv.URL + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.As(err, &te) || te.Which != "attempt" || !te.InBody {
		t.Fatalf("stalled body: %v (%+v); want the attempt timeout, in the body", err, te)
	}
}
