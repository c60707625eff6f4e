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
package resilienttest
