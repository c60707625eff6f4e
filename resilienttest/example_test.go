package resilienttest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A dependency that is down for two calls and asks to be left alone for a
// second. In a test, use NewServer(t, ...), which closes the server when
// the test ends.
func Example() {
	srv := resilienttest.StartServer(
		resilienttest.RetryAfter(time.Second),
		resilienttest.FailFirst(2, http.StatusServiceUnavailable),
	)
	defer srv.Close()

	for range 3 {
		resp, err := srv.Client().Get(srv.URL + "/prices")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %q Retry-After: %s\n", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	fmt.Println("requests:", srv.Count(), "connections:", srv.Conns())
	// Output:
	// 503 "Service Unavailable" Retry-After: 1
	// 503 "Service Unavailable" Retry-After: 1
	// 200 "OK" Retry-After: 1
	// requests: 3 connections: 1
}

// The in-memory Transport records what a client sent, here an idempotency
// key and a trace context.
func ExampleNewTransport() {
	tr := resilienttest.NewTransport(resilienttest.Respond(http.StatusCreated, `{"id":"ch_1"}`))
	client := &http.Client{Transport: tr}

	req, _ := http.NewRequest("POST", "http://payments.test/charges", strings.NewReader(`{"amount":500}`))
	req.Header.Set("Idempotency-Key", "8e03978e-40d5-43e8-bc93-6894a57f9324")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	for _, r := range tr.Requests() {
		fmt.Println(r.N, r.Method, r.Host, r.URL, string(r.Body))
		fmt.Println("Idempotency-Key:", r.Header.Get("Idempotency-Key"))
		fmt.Println("traceparent:", r.Header.Get("traceparent"))
	}
	// Output:
	// 201 Created
	// 1 POST payments.test /charges {"amount":500}
	// Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324
	// traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
}

// Hang holds requests until released: Await tells when they are in flight.
func ExampleHang() {
	h := resilienttest.Hang()
	srv := resilienttest.StartServer(h)
	defer srv.Close()

	status := make(chan string, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			status <- err.Error()
			return
		}
		resp.Body.Close()
		status <- resp.Status
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Await(ctx, 1); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held:", h.Waiting())
	h.Release()
	fmt.Println(<-status)
	// Output:
	// held: 1
	// 200 OK
}

// A Switch takes a dependency down and brings it back between calls, for
// tests of what a client does while it is down and after it recovers.
func ExampleSwitch() {
	down := resilienttest.Switch(resilienttest.Status(http.StatusServiceUnavailable))
	srv := resilienttest.StartServer(down)
	defer srv.Close()

	get := func() {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	get()
	down.On()
	get()
	down.Off()
	get()
	// Output:
	// 200 OK
	// 503 Service Unavailable
	// 200 OK
}

// Which requests FailFraction fails depends only on the seed and the
// request numbers, so a flaky dependency is reproducible.
func ExampleFailFraction() {
	tr := resilienttest.NewTransport(resilienttest.FailFraction(0.3, http.StatusBadGateway, 1))
	client := &http.Client{Transport: tr}
	var failed []int
	for i := 1; i <= 20; i++ {
		resp, err := client.Get("http://flaky.test/")
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadGateway {
			failed = append(failed, i)
		}
	}
	fmt.Println("failed:", failed)
	// Output:
	// failed: [3 5 8 9 10 13 20]
}

// Connection-level faults, seen from a plain http.Client.
func ExampleResetMidBody() {
	srv := resilienttest.StartServer(
		resilienttest.OnRequests(1, 1, resilienttest.ResetConn()),
		resilienttest.OnRequests(2, 2, resilienttest.ResetMidBody(5)),
		resilienttest.OnRequests(3, 3, resilienttest.Truncate(5)),
		resilienttest.Respond(http.StatusOK, "hello, world"),
	)
	defer srv.Close()

	for range 3 {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			fmt.Println("no response; reset:", errors.Is(err, syscall.ECONNRESET))
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %q; reset: %v, truncated: %v\n", resp.StatusCode, body,
			errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF))
	}
	// Output:
	// no response; reset: true
	// 200 "hello"; reset: true, truncated: false
	// 200 "hello"; reset: false, truncated: true
}

// A body that stalls after its header: resilient's Timeout bounds the body
// read too.
func ExampleDrip() {
	tr := resilienttest.NewTransport(
		resilienttest.Drip(1, time.Hour),
		resilienttest.Respond(http.StatusOK, "slow"),
	)
	client := &http.Client{Transport: resilient.Chain(tr, resilient.Timeout(20*time.Millisecond))}

	resp, err := client.Get("http://slow.test/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	fmt.Println("timed out:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// timed out: true
}

// A body that stops in the middle: the header and the first part arrive
// at once, the rest never does. resilient's Timeout cuts the read.
func ExampleStall() {
	tr := resilienttest.NewTransport(
		resilienttest.Stall(len("first part;")),
		resilienttest.Respond(http.StatusOK, "first part;second part"),
	)
	client := &http.Client{Transport: resilient.Chain(tr, resilient.Timeout(20*time.Millisecond))}

	resp, err := client.Get("http://stalls.test/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	fmt.Printf("read %q; timed out: %v\n", body, errors.Is(err, context.DeadlineExceeded))
	// Output:
	// read "first part;"; timed out: true
}

// Abandoned tells whether a client that timed out also let go of the
// server, instead of leaving the request running there.
func ExampleHangFault_Abandoned() {
	h := resilienttest.Hang()
	srv := resilienttest.StartServer(h)
	defer srv.Close()
	client := &http.Client{Transport: resilient.Chain(nil, resilient.Timeout(20*time.Millisecond))}
	defer client.CloseIdleConnections()

	_, err := client.Get(srv.URL)
	fmt.Println("timed out:", errors.Is(err, context.DeadlineExceeded))

	// The server sees the client go a moment after the client's error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.AwaitAbandoned(ctx, 1); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("abandoned:", h.Abandoned(), "still held:", h.Waiting())
	// Output:
	// timed out: true
	// abandoned: 1 still held: 0
}

// OpenBodies catches a client that forgets to close a response body.
func ExampleTransport_OpenBodies() {
	tr := resilienttest.NewTransport()
	client := &http.Client{Transport: tr}

	leaky := func() {
		resp, err := client.Get("http://api.test/")
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = io.ReadAll(resp.Body) // read, but never closed
	}
	leaky()
	fmt.Println("open bodies:", tr.OpenBodies())
	// Output:
	// open bodies: 1
}
