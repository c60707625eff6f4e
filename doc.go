// Package resilient makes outbound HTTP calls survive slow, flaky and dead
// dependencies. It is a chain of http.RoundTripper stages: timeouts, retry
// with backoff and jitter, a circuit breaker and a bulkhead per host,
// idempotency keys, a rate limit and a server's cool-down per host, and
// optional fallbacks, hedging and OpenTelemetry.
//
// There are three ways in:
//
//	client := resilient.NewClient()                  // a drop-in *http.Client
//	rt := resilient.NewTransport(sdkTransport)       // around a transport you have
//	rt := resilient.Chain(base, resilient.Timeout(time.Second)) // your own pipeline
//
// # The standard pipeline
//
// NewClient and NewTransport stack these stages, outermost first:
//
//  1. Fallback (only with WithFallback): sees the final outcome.
//  2. IdempotencyKey: one key per logical call, reused by every attempt.
//  3. Timeout, total (30 s): bounds attempts, backoff sleeps and body read.
//  4. Retry (3 attempts), or Hedge with WithHedge: re-runs what is below.
//  5. Bulkhead (256 per host, within that an adaptive limit that follows
//     the host's latency): a backoff sleep holds no slot.
//  6. RateLimit (per host; no rate, a host's Retry-After cool-down): every
//     attempt on the wire spends a turn. Below Bulkhead and above the
//     breaker, nothing that waits sits between it and the wire, so the host
//     sees the limiter's spacing, and its refusals are not counted as the
//     host's failures.
//  7. CircuitBreaker (per host; 5 failures in a row, or a call its caller
//     gave up on after it hung): every attempt counts; open costs no
//     network.
//  8. Timeout, per attempt (10 s): a hung attempt fails fast and is retried.
//  9. Tracing: one CLIENT span per attempt, trace context per attempt.
//  10. The base transport.
//
// Each stage has a With... option, and Without(Stage...) switches stages
// off. Chain builds any other order from the same stages; Chain's first
// stage is the outermost, and giving each policy the same Telemetry value
// gives a Chain-built pipeline the standard one's metrics and logs.
//
// A POST or PATCH is sent again only when that cannot duplicate a write:
// when nothing reached the server, when the server declined it (429, 503)
// and it carries a key, or after an ambiguous failure with a key the
// caller set (or IdempotencyPolicy.ServerDeduplicates).
//
// Every stage keeps the http.RoundTripper contract: it never modifies the
// caller's request, closes the request body on its early-error paths,
// returns an error only when there is no response, starts no goroutine that
// outlives the call, and forwards CloseIdleConnections to the base.
package resilient
