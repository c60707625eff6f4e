package telemetry

import (
	"errors"
	"net/url"
	"strings"
)

// Redacted replaces credentials and signatures in url.full.
const Redacted = "REDACTED"

// secretParams are the query parameters whose values grant access: the
// OTel HTTP conventions' signature list, the rest of AWS SigV4's, and the
// names APIs commonly take tokens and keys by. Keys match
// case-insensitively: redacting too much is the safe mistake.
var secretParams = [...]string{
	"sig", "signature", "AWSAccessKeyId",
	"access_token", "token", "api_key", "apikey", "key",
	"client_secret", "password",
}

// secretPrefixes name whole families: every X-Amz-* and X-Goog-* parameter
// of a presigned URL is part of the credential or pins what it signs.
var secretPrefixes = [...]string{"X-Amz-", "X-Goog-"}

// RedactURL formats u for url.full: user info becomes REDACTED:REDACTED
// and the values of credential query parameters become REDACTED. The rest
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

// RedactError is err's text for telemetry (span status, event causes):
// the URL a *url.Error carries is redacted as url.full is.
func RedactError(err error) string {
	msg := err.Error()
	var ue *url.Error
	if !errors.As(err, &ue) || ue.URL == "" {
		return msg
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		// Unparsable, so nothing can say which part is secret.
		return strings.ReplaceAll(msg, ue.URL, Redacted)
	}
	if r := RedactURL(u); r != ue.URL {
		return strings.ReplaceAll(msg, ue.URL, r)
	}
	return msg
}

// RedactQuery replaces the values of credential parameters in the raw
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
		if eq := strings.IndexByte(part, '='); eq >= 0 && isSecret(part[:eq]) && part[eq+1:] != Redacted {
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

// isSecret reports whether the encoded query key k names a credential.
func isSecret(k string) bool {
	if strings.ContainsAny(k, "%+") {
		if d, err := url.QueryUnescape(k); err == nil {
			k = d
		}
	}
	for _, s := range secretParams {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	for _, p := range secretPrefixes {
		if len(k) >= len(p) && strings.EqualFold(k[:len(p)], p) {
			return true
		}
	}
	return false
}
