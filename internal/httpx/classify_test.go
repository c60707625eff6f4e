package httpx

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestInvalid(t *testing.T) {
	get := func(edit func(*http.Request)) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://h/", nil)
		edit(r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want string // substring; "" means valid
	}{
		{"valid", get(func(r *http.Request) { r.Header.Set("X-A", "b\tc") }), ""},
		{"CR in value", get(func(r *http.Request) { r.Header["X-A"] = []string{"a\rb"} }), "invalid value"},
		{"LF in value", get(func(r *http.Request) { r.Header["X-A"] = []string{"a\nb"} }), "invalid value"},
		{"DEL in value", get(func(r *http.Request) { r.Header["X-A"] = []string{"a\x7f"} }), "invalid value"},
		{"space in name", get(func(r *http.Request) { r.Header["X A"] = []string{"v"} }), "invalid header name"},
		{"colon in name", get(func(r *http.Request) { r.Header["X:A"] = []string{"v"} }), "invalid header name"},
		{"empty name", get(func(r *http.Request) { r.Header[""] = []string{"v"} }), "invalid header name"},
		{"bad method", get(func(r *http.Request) { r.Method = "G(T" }), "invalid method"},
		{"scheme", get(func(r *http.Request) { r.URL.Scheme = "ftp" }), "unsupported scheme"},
		{"no host", get(func(r *http.Request) { r.URL.Host, r.Host = "", "" }), "no host"},
		{"nil URL", get(func(r *http.Request) { r.URL = nil }), "nil URL"},
		{"nil body with length", get(func(r *http.Request) { r.ContentLength = 3 }), "nil Body"},
	} {
		got := Invalid(tc.req)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: Invalid = %q, want %q", tc.name, got, tc.want)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestGuardBody(t *testing.T) {
	read := func(req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
	}
	for _, tc := range []struct {
		name   string
		body   io.Reader
		length int64
		want   string
	}{
		{"whole body", strings.NewReader("abc"), 3, ""},
		{"unknown length", strings.NewReader("abc"), 0, ""},
		{"short", strings.NewReader("abc"), 10, "with a body of 3 bytes"},
		{"long", strings.NewReader("abcdef"), 3, "with a body of 6 bytes"},
		{"reader fails", errReader{errors.New("boom")}, 3, "read failed"},
	} {
		req, _ := http.NewRequest(http.MethodPut, "http://h/", tc.body)
		req.ContentLength = tc.length
		g := GuardBody(req)
		if g == req || GuardBody(g) != g {
			t.Fatalf("%s: GuardBody must copy once and then leave a guarded request as is", tc.name)
		}
		read(g)
		if got := Invalid(g); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: Invalid = %q, want %q", tc.name, got, tc.want)
		}
	}
	noBody, _ := http.NewRequest(http.MethodGet, "http://h/", nil)
	if GuardBody(noBody) != noBody {
		t.Error("a request without a body was copied")
	}
}

func TestStatusRules(t *testing.T) {
	for code, want := range map[int][2]bool{ // failure, transient
		200: {false, false}, 404: {false, false}, 408: {false, true}, 429: {true, true},
		500: {true, true}, 501: {true, false}, 502: {true, true}, 503: {true, true}, 504: {true, true},
	} {
		if FailureStatus(code) != want[0] || TransientStatus(code) != want[1] {
			t.Errorf("%d: failure %v transient %v, want %v", code, FailureStatus(code), TransientStatus(code), want)
		}
	}
}
