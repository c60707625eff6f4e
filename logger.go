package resilient

import "log/slog"

// WithLogger logs what the standard pipeline's stages decide to l, through
// the same reports that feed the span events and counters (Telemetry's
// Logger field does the same for a pipeline built with Chain). Nil means no
// logging, the default.
//
// Levels: Warn when a breaker opens, a bulkhead or its adaptive limit is
// full, or the retry budget refuses a retry; Info for a retry (attempt, delay, and the status or
// error that caused it), a wait a Retry-After asked for, a fallback, a
// breaker closing or half-opening, a rate limit's refusal and a host's
// cool-down; Debug for each call an open breaker refuses (the Warn on
// opening already said so, and at Info an open breaker would flood the
// log), hedges and rate limit waits. Refusals carry the "reason" the
// rejections counter uses (circuit_open, bulkhead_full, retry_budget,
// rate_limited, adaptive_limit). Every record names the authority (scheme://host:port, or
// the breaker's or pool's Key); those about one request add its method
// and URL.
//
// No credential is logged: no header value is ever written, URLs lose
// their user info and the values of credential query parameters (token,
// access_token, api_key, key, sig, X-Amz-*, ...) as url.full does in
// spans, and so do the URLs quoted in error texts.
//
// Stages report only off the happy path, and the logger is bound when the
// pipeline is built, so a call that succeeds first time logs nothing and
// costs nothing more with or without a logger. A Fleet store's trouble is
// not logged yet: a fleet reports through the same sink when it gains
// events of its own.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
