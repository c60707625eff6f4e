package resilient_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient"
)

// A dependency that fails twice, then answers: the Retry stage hides the
// failures, and the caller sees the answer.
func ExampleRetry() {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
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
	fmt.Printf("%s %q after %d requests\n", resp.Status, body, n.Load())
	// Output:
	// attempt 1: 503 Service Unavailable, retrying
	// attempt 2: 503 Service Unavailable, retrying
	// 200 OK "hello" after 3 requests
}
