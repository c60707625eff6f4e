package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// Class says whether the server may have acted on a failed attempt, which
// decides what may be sent again (DESIGN.md, "Retry safety").
type Class uint8

// The classes.
const (
	NotSent   Class = iota + 1 // the server cannot have acted: any method may go again
	Declined                   // the server says it did not act (429, 503)
	Ambiguous                  // the server may have acted
)

// Key is what a request's idempotency key proves.
type Key uint8

// The kinds of key.
const (
	NoKey       Key = iota
	PipelineKey     // made by the IdempotencyKey stage for servers that may ignore it
	TrustedKey      // set by the caller, or made for servers that deduplicate
)

type keyMark struct{}

// keyInfo is what the IdempotencyKey stage tells the stages below.
type keyInfo struct {
	header string
	kind   Key
}

// WithKey records in ctx that the call carries a key in header, of kind.
func WithKey(ctx context.Context, header string, kind Key) context.Context {
	return context.WithValue(ctx, keyMark{}, keyInfo{header, kind})
}

// KeyOf says what req's key proves. A call the IdempotencyKey stage saw is
// what it recorded; otherwise a key in Idempotency-Key or X-Idempotency-Key
// is the caller's own.
func KeyOf(req *http.Request) Key {
	if k, ok := req.Context().Value(keyMark{}).(keyInfo); ok {
		return k.kind
	}
	for _, h := range IdempotencyHeaders {
		if _, ok := req.Header[h]; ok {
			return TrustedKey
		}
	}
	return NoKey
}

// Idempotent reports whether method may be sent twice by its definition
// (RFC 9110 9.2.2).
func Idempotent(method string) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Rewindable reports whether req's body, if any, can be sent again.
func Rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// ClassOf classifies a failed attempt: an error after which nothing was
// written (wrote false) is NotSent, as is a failure to dial or to shake
// hands; 429 and 503 are Declined; every other failure is Ambiguous.
func ClassOf(resp *http.Response, err error, wrote bool) Class {
	if err != nil {
		if !wrote || beforeRequest(err) {
			return NotSent
		}
		return Ambiguous
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return Declined
	}
	return Ambiguous
}

// beforeRequest reports errors that happen before a request can be written:
// dialing (refused, unreachable, DNS) and the TLS handshake.
func beforeRequest(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var rec tls.RecordHeaderError
	var alert tls.AlertError
	var verr *tls.CertificateVerificationError
	return errors.As(err, &rec) || errors.As(err, &alert) || errors.As(err, &verr)
}

// MayResend reports whether a request may be sent again after an attempt
// of class c: an idempotent method always; POST and PATCH when nothing was
// sent, when the server declined with any key, and after an ambiguous
// failure only with a trusted key. The body must be rewindable either way.
func MayResend(req *http.Request, c Class) bool {
	if !Rewindable(req) {
		return false
	}
	if Idempotent(req.Method) || c == NotSent {
		return true
	}
	switch KeyOf(req) {
	case TrustedKey:
		return true
	case PipelineKey:
		return c == Declined
	}
	return false
}

// NeedsClass reports whether the class of req's failures matters, so the
// stage must watch whether the request was written (WatchWrite).
func NeedsClass(req *http.Request) bool {
	return !Idempotent(req.Method) && KeyOf(req) != TrustedKey && Rewindable(req)
}

// Written records whether an attempt's request was written whole.
type Written struct{ ok atomic.Bool }

// Wrote reports whether the request was written whole.
func (w *Written) Wrote() bool { return w.ok.Load() }

// WatchWrite returns an attempt of req that records in w whether it was
// written whole. It also drops GetBody from the attempt: with GetBody, and
// an Idempotency-Key our stage made, net/http would re-send the request by
// itself on a reused connection that died after it was written (its
// isReplayable), which is the duplicate these rules exist to prevent. The
// caller keeps req, and its GetBody, for the re-sends the rules allow.
func WatchWrite(req *http.Request, w *Written) *http.Request {
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { w.ok.Store(info.Err == nil) },
	}
	out := req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	if out.Body == nil || out.Body == http.NoBody {
		// net/http replays a bodiless request with a key whatever
		// GetBody says; an empty body that cannot be rewound stops it
		// (net/http finds it empty and sends Content-Length: 0).
		out.Body = emptyBody{}
	}
	out.GetBody = nil
	return out
}

// emptyBody is a request body with nothing in it that net/http cannot
// take for http.NoBody.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// ShouldRetryHint reads the server's own retry hints on a failure status:
// x-should-retry (OpenAI and others) and Stripe-Should-Retry. It returns
// the hint and whether there was one.
func ShouldRetryHint(resp *http.Response) (retry, ok bool) {
	if resp == nil || resp.StatusCode < 400 {
		return false, false // a success is not retried whatever it says: no lookups on the happy path
	}
	for _, h := range [...]string{"X-Should-Retry", "Stripe-Should-Retry"} {
		switch resp.Header.Get(h) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}
