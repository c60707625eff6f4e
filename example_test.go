package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/resilient-go/resilient"
)

// A Timeout stage bounds the call and its body read. Here a server that
// never answers is cut off after 50 ms with a timeout error.
func ExampleTimeout() {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)

	client := &http.Client{Transport: resilient.Chain(nil, resilient.Timeout(50*time.Millisecond))}
	defer client.CloseIdleConnections()
	_, err := client.Get(srv.URL)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

// NewClient is a drop-in *http.Client with the standard pipeline.
func ExampleNewClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
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
