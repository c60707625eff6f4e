package resilient_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A dependency that fails twice, then answers: the Retry stage hides the
// failures, and the caller sees the answer.
func ExampleRetry() {
	srv := resilienttest.StartServer(
		resilienttest.FailFirst(2, http.StatusServiceUnavailable),
		resilienttest.Respond(http.StatusOK, "hello"),
	)
	defer srv.Close()

	client := &http.Client{Transport: resilient.Chain(nil,
		resilient.Timeout(5*time.Second),
		resilient.Retry(resilient.RetryPolicy{
			MaxAttempts:  3,
			InitialDelay: 10 * time.Millisecond,
			OnRetry: func(req *http.Request, attempt int, delay time.Duration, resp *http.Response, err error) {
				fmt.Printf("attempt %d: %s, retrying\n", attempt, resp.Status)
			},
		}),
	)}
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %q after %d requests\n", resp.Status, body, srv.Count())
	// Output:
	// attempt 1: 503 Service Unavailable, retrying
	// attempt 2: 503 Service Unavailable, retrying
	// 200 OK "hello" after 3 requests
}
