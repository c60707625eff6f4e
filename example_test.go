package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A Timeout stage bounds the call and its body read. Here a server that
// never answers is cut off after 50 ms with a timeout error.
func ExampleTimeout() {
	srv := resilienttest.StartServer(resilienttest.Hang())
	defer srv.Close()

	client := &http.Client{Transport: resilient.Chain(nil, resilient.Timeout(50*time.Millisecond))}
	defer client.CloseIdleConnections()
	_, err := client.Get(srv.URL)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

// NewClient is a drop-in *http.Client with the standard pipeline.
func ExampleNewClient() {
	srv := resilienttest.StartServer(resilienttest.Respond(http.StatusOK, "hello"))
	defer srv.Close()

	client := resilient.NewClient(resilient.WithTotalTimeout(5 * time.Second))
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello
}

// Chain builds a pipeline stage by stage; the first stage is outermost.
func ExampleChain() {
	srv := resilienttest.StartServer()
	defer srv.Close()

	rt := resilient.Chain(http.DefaultTransport,
		resilient.Timeout(30*time.Second), // total
		resilient.Timeout(10*time.Second), // per attempt
	)
	client := &http.Client{Transport: rt}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
