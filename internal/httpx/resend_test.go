package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestMayResend(t *testing.T) {
	body := func() io.ReadCloser { return io.NopCloser(strings.NewReader("b")) }
	getBody := func() (io.ReadCloser, error) { return body(), nil }
	req := func(method string, key Key, header http.Header, rewind bool) *http.Request {
		r := &http.Request{Method: method, Header: header, Body: body()}
		if rewind {
			r.GetBody = getBody
		}
		if key != NoKey {
			r = r.WithContext(WithKey(context.Background(), "Idempotency-Key", key))
		} else {
			r = r.WithContext(context.Background())
		}
		return r
	}
	all := [...]Class{NotSent, Declined, Ambiguous}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want [3]bool // NotSent, Declined, Ambiguous
	}{
		{"GET", req("GET", NoKey, nil, true), [3]bool{true, true, true}},
		{"PUT", req("PUT", NoKey, nil, true), [3]bool{true, true, true}},
		{"PUT, body not rewindable", req("PUT", NoKey, nil, false), [3]bool{false, false, false}},
		{"POST without key", req("POST", NoKey, nil, true), [3]bool{true, false, false}},
		{"POST, pipeline key", req("POST", PipelineKey, nil, true), [3]bool{true, true, false}},
		{"POST, trusted key", req("POST", TrustedKey, nil, true), [3]bool{true, true, true}},
		{"PATCH, caller's key, no stage", req("PATCH", NoKey, http.Header{"X-Idempotency-Key": {"k"}}, true), [3]bool{true, true, true}},
		{"POST, trusted key, body not rewindable", req("POST", TrustedKey, nil, false), [3]bool{false, false, false}},
	} {
		for i, c := range all {
			if got := MayResend(tc.req, c); got != tc.want[i] {
				t.Errorf("%s after class %d: MayResend = %v, want %v", tc.name, c, got, tc.want[i])
			}
		}
	}
}

func TestClassOf(t *testing.T) {
	dial := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	reset := &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}
	dns := &net.DNSError{Err: "no such host", Name: "x.test"}
	status := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	for _, tc := range []struct {
		name  string
		resp  *http.Response
		err   error
		wrote bool
		want  Class
	}{
		{"dial refused", nil, dial, true, NotSent},
		{"DNS", nil, dns, true, NotSent},
		{"lost before written", nil, reset, false, NotSent},
		{"lost after written", nil, reset, true, Ambiguous},
		{"timeout after written", nil, context.DeadlineExceeded, true, Ambiguous},
		{"429", status(429), nil, true, Declined},
		{"503", status(503), nil, true, Declined},
		{"500", status(500), nil, true, Ambiguous},
		{"502", status(502), nil, true, Ambiguous},
		{"504", status(504), nil, true, Ambiguous},
		{"408", status(408), nil, true, Ambiguous},
	} {
		if got := ClassOf(tc.resp, tc.err, tc.wrote); got != tc.want {
			t.Errorf("%s: ClassOf = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestShouldRetryHint(t *testing.T) {
	for _, tc := range []struct {
		header, value string
		retry, ok     bool
	}{
		{"X-Should-Retry", "false", false, true},
		{"X-Should-Retry", "true", true, true},
		{"Stripe-Should-Retry", "false", false, true},
		{"Stripe-Should-Retry", "true", true, true},
		{"X-Should-Retry", "maybe", false, false},
		{"Other", "true", false, false},
	} {
		resp := &http.Response{StatusCode: 503, Header: http.Header{}}
		resp.Header.Set(tc.header, tc.value)
		if retry, ok := ShouldRetryHint(resp); retry != tc.retry || ok != tc.ok {
			t.Errorf("%s: %s = %v, %v; want %v, %v", tc.header, tc.value, retry, ok, tc.retry, tc.ok)
		}
	}
	if _, ok := ShouldRetryHint(nil); ok {
		t.Error("a nil response gave a hint")
	}
}

func TestHopByHop(t *testing.T) {
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"} {
		if !HopByHop(h) {
			t.Errorf("%s is not refused", h)
		}
	}
	if HopByHop("Idempotency-Key") || HopByHop("X-Request-Id") {
		t.Error("a key header is refused")
	}
}
