package telemetry

import (
	"net/url"
	"strings"
)

// Redacted replaces credentials and signatures in url.full.
const Redacted = "REDACTED"

// signatureParams are the query parameters whose values grant access (the
// list of the OTel HTTP conventions plus the rest of AWS SigV4's). Keys
// match case-insensitively: redacting too much is the safe mistake.
var signatureParams = [...]string{
	"sig", "Signature", "X-Goog-Signature", "AWSAccessKeyId",
	"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
}

// RedactURL formats u for url.full: user info becomes REDACTED:REDACTED
// and the values of signature query parameters become REDACTED. The rest
// of the URL, including the order and encoding of other parameters, is
// kept.
func RedactURL(u *url.URL) string {
	q := RedactQuery(u.RawQuery)
	if u.User == nil && q == u.RawQuery {
		return u.String()
	}
	c := *u
	if c.User != nil {
		c.User = url.UserPassword(Redacted, Redacted)
	}
	c.RawQuery = q
	return c.String()
}

// RedactQuery replaces the values of signature parameters in the raw
// (still encoded) query string q. It returns q itself when there is
// nothing to redact, so the common case does not allocate.
func RedactQuery(q string) string {
	var b strings.Builder
	done := 0 // q[:done] is already in b
	for start := 0; start < len(q); {
		end := strings.IndexByte(q[start:], '&')
		if end < 0 {
			end = len(q)
		} else {
			end += start
		}
		part := q[start:end]
		if eq := strings.IndexByte(part, '='); eq >= 0 && isSignature(part[:eq]) && part[eq+1:] != Redacted {
			b.WriteString(q[done : start+eq+1])
			b.WriteString(Redacted)
			done = end
		}
		start = end + 1
	}
	if done == 0 {
		return q
	}
	b.WriteString(q[done:])
	return b.String()
}

// isSignature reports whether the encoded query key k names a signature.
func isSignature(k string) bool {
	if strings.ContainsAny(k, "%+") {
		if d, err := url.QueryUnescape(k); err == nil {
			k = d
		}
	}
	for _, s := range signatureParams {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}
