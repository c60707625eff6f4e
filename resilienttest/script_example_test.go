package resilienttest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/resilient-go/resilient/resilienttest"
)

// A fake whose answer depends on the request: it echoes the path and the
// caller's request ID. The same fault works on a Server.
func ExampleHandle() {
	tr := resilienttest.NewTransport(
		resilienttest.FailFirst(1, http.StatusServiceUnavailable),
		resilienttest.Handle(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"path":%q,"request_id":%q}`, r.URL.Path, r.Header.Get("X-Request-Id"))
		}),
	)
	client := &http.Client{Transport: tr}
	for range 2 {
		req, _ := http.NewRequest("GET", "http://orders.test/orders/42", nil)
		req.Header.Set("X-Request-Id", "r-1")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	// Output:
	// 503 Service Unavailable
	// 200 {"path":"/orders/42","request_id":"r-1"}
}

// ResetCounts separates the phases of a test: the second phase sees the
// script from its start, as a fresh dependency would.
func ExampleTransport_ResetCounts() {
	tr := resilienttest.NewTransport(resilienttest.FailFirst(1, http.StatusServiceUnavailable))
	client := &http.Client{Transport: tr}
	call := func() int {
		resp, err := client.Get("http://stock.test/")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println("phase 1:", call(), call(), "requests:", tr.Count())
	tr.ResetCounts()
	fmt.Println("phase 2:", call(), "requests:", tr.Count())
	// Output:
	// phase 1: 503 200 requests: 2
	// phase 2: 503 requests: 1
}

// A fault after one that answers every request could never run, so the
// script is refused at construction.
func ExampleNewTransport_refused() {
	defer func() {
		msg := fmt.Sprint(recover())
		fmt.Println(msg[:strings.Index(msg, ";")])
	}()
	resilienttest.NewTransport(
		resilienttest.Respond(http.StatusOK, `{"items":[]}`),
		resilienttest.Stall(3), // meant to stall the body, but Respond has answered already
	)
	// Output:
	// resilienttest: NewTransport: fault 2, Stall(3), can never run: fault 1, Respond(200, "{\"items\":[]}"), answers every request before it
}
