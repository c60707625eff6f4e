package resilient_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A dependency whose first request stalls: after 20 ms the Hedge stage
// sends a copy, which answers, and the stalled request is cancelled.
func ExampleHedge() {
	srv := resilienttest.StartServer(
		resilienttest.OnRequests(1, 1, resilienttest.Latency(time.Minute)),
		resilienttest.Respond(200, "hello"),
	)
	defer srv.Close()

	client := &http.Client{Transport: resilient.Chain(nil,
		resilient.Timeout(5*time.Second),
		resilient.Hedge(resilient.HedgePolicy{Delay: 20 * time.Millisecond}),
	)}
	defer client.CloseIdleConnections()

	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %q after %d requests, in under a second: %t\n",
		resp.Status, body, srv.Count(), time.Since(start) < time.Second)
	// Output:
	// 200 OK "hello" after 2 requests, in under a second: true
}

// In the standard pipeline, WithHedge hedges slow calls instead of
// retrying failed ones.
func ExampleWithHedge() {
	srv := resilienttest.StartServer(
		resilienttest.OnRequests(1, 1, resilienttest.Latency(time.Minute)),
	)
	defer srv.Close()

	client := resilient.NewClient(resilient.WithHedge(resilient.HedgePolicy{Delay: 20 * time.Millisecond}))
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", srv.Count(), "requests")
	// Output:
	// 200 OK after 2 requests
}
