package resilient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/resilient-go/resilient/internal/httpx"
)

// DefaultShouldRetry is the retry decision of a zero RetryPolicy: retry
// transport errors (attempt timeouts among them) and 408, 429, 500, 502,
// 503 and 504 responses. It never retries the caller's own cancellation or
// deadline, a TLS certificate error, ErrCircuitOpen or ErrBulkheadFull.
func DefaultShouldRetry(req *http.Request, resp *http.Response, err error) bool {
	if err != nil {
		return !permanent(err) && (req == nil || req.Context().Err() == nil)
	}
	return resp != nil && httpx.TransientStatus(resp.StatusCode)
}

// permanent reports errors another attempt cannot fix: a rejection by a
// breaker or bulkhead (retrying only burns the budget) and a certificate
// the client does not trust.
func permanent(err error) bool {
	switch err.(type) {
	case *CircuitOpenError, *BulkheadFullError: // as our stages return them: no chain to walk
		return true
	}
	if errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrBulkheadFull) {
		return true
	}
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr)
}

// retryAfter is the wait a 429 or 503 asks for: Retry-After-Ms
// (milliseconds, as OpenAI sends it) or Retry-After.
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	if v := resp.Header.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && !math.IsInf(ms, 0) {
			return time.Duration(min(ms, 1e12) * float64(time.Millisecond)), true // 1e12 ms: 31 years, no overflow
		}
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), now)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP-date
// (RFC 9110 10.2.3), as a wait from now. A date in the past means no wait.
// Huge second counts saturate rather than overflow.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		var secs int64
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			secs = min(secs*10+int64(c-'0'), maxSecs)
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, at.Sub(now)), true
}

// fullJitter draws each delay uniformly from [0, d) where d is the next
// step of an exponential backoff without jitter of its own.
type fullJitter struct {
	exp backoff.ExponentialBackOff
}

func newFullJitter(initial, maxDelay time.Duration) *fullJitter {
	j := &fullJitter{exp: backoff.ExponentialBackOff{
		InitialInterval: initial,
		Multiplier:      2,
		MaxInterval:     maxDelay,
		Stop:            backoff.Stop,
		Clock:           backoff.SystemClock,
	}}
	j.exp.Reset()
	return j
}

func (j *fullJitter) NextBackOff() time.Duration {
	d := j.exp.NextBackOff()
	if d <= 0 {
		return d
	}
	return rand.N(d)
}

func (j *fullJitter) Reset() { j.exp.Reset() }
