// Package resilienttest provides fake failing servers for unit tests of
// code that makes HTTP calls: an httptest-based Server and an in-memory
// Transport, both scripted by composable faults, both recording what they
// received.
//
// A script is a list of faults run in order for every request:
//
//	srv := resilienttest.NewServer(t,
//		resilienttest.RetryAfter(time.Second),   // a header on every response
//		resilienttest.FailFirst(2, 503),         // requests 1 and 2 get 503
//		resilienttest.Respond(200, `{"ok":1}`),  // the others get this
//	)
//	resp, err := myClient.Get(srv.URL)
//	...
//	if srv.Count() != 3 { ... }
//
// A fault either answers the request and ends the script (Status, Respond,
// Handle, FailFirst, FailFraction, ResetConn), or acts and passes it on:
// Latency and Hang wait; Header and RetryAfter add headers; Drip, Stall,
// Truncate and ResetMidBody shape how the final response's body is
// delivered. With no answer, the response is 200 "OK". A script with a
// fault that can never run, after one that answers every request, is
// refused with a panic that names both. Handle answers with a handler
// func, for a fake whose answer depends on the request. Selectors pick
// which requests a group of faults applies to: OnRequests, After, Every,
// OnMethod, OnPath, and Switch, which the test turns on and off between
// calls. Requests are
// numbered from 1 in order of arrival. NewTLSServer serves HTTPS with a
// certificate only the server's Client trusts.
//
// Faults that take time take a duration, so tests stay fast. Waits end when
// the client goes away; a Server's Close (run by NewServer at the end of the
// test) releases every held request, so no handler outlives the test.
//
// The Transport does the same without sockets, in the caller's goroutine:
// a connection reset is an error matching errors.Is(err,
// syscall.ECONNRESET), a truncated body ends in io.ErrUnexpectedEOF.
//
// Besides the requests they received (Requests, Count; ResetCounts starts
// a new phase of a test, numbering requests from 1 again), both report
// what a client left running: InFlight and PeakInFlight count the requests being
// handled now and the most at once, for tests of a concurrency limit; a
// HangFault's Abandoned counts the held requests whose client gave up, for
// tests that a timeout or a hedge really let go; and the Transport's
// OpenBodies counts response bodies not yet closed, a leak check.
//
// # Time without sleeps
//
// Breaker timeouts, Retry-After waits and backoffs are tested on fake
// time with testing/synctest rather than real sleeps: inside
// synctest.Test, time.Now, time.Sleep and every timer the stages start are
// fake, and time jumps ahead whenever all of the bubble's goroutines are
// blocked. A 30 s Retry-After then takes no real time and is exactly 30 s
// of fake time; time.Sleep(11 * time.Second) walks a breaker past a 10 s
// OpenTimeout at once. Use the in-memory Transport inside a bubble: a
// Server's sockets are not "blocked" in synctest's sense, so time would
// not move while a call waits on one. synctest_test.go in this package
// runs both patterns against the library's own stages:
//
//	synctest.Test(t, func(t *testing.T) {
//		tr := resilienttest.NewTransport(
//			resilienttest.OnRequests(1, 1, resilienttest.RetryAfter(30*time.Second), resilienttest.Status(503)),
//			resilienttest.Respond(200, "ok"))
//		client := &http.Client{Transport: resilient.NewTransport(tr)}
//		start := time.Now()
//		resp, err := client.Get("http://api.test/")
//		// time.Since(start) == 30*time.Second
//	})
package resilienttest
