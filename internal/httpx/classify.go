package httpx

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
)

// FailureStatus reports whether a status says the dependency cannot serve
// the call now (5xx, 429) rather than that the request is wrong: what the
// breaker counts, a hedge does not accept, and a fallback answers.
func FailureStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

// TransientStatus reports the statuses worth another attempt: 408, 429,
// 500, 502, 503, 504.
func TransientStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Settle enforces the RoundTripper contract on what a transport below
// returned: an error comes with no response. A response that came with an
// error anyway is discarded and the error kept.
func Settle(resp *http.Response, err error) (*http.Response, error) {
	if err != nil && resp != nil {
		Discard(resp)
		resp = nil
	}
	return resp, err
}

// Invalid says why net/http would refuse req before it touches the
// network, or "" if it would not: the caller's mistake, which says nothing
// about the dependency. It mirrors the checks of net/http's Transport
// (method and header syntax, scheme, host, a nil body with a length) and
// the body faults GuardBody saw. It is asked only after a call failed, so
// a valid request pays nothing for it.
func Invalid(req *http.Request) string {
	if req.URL == nil {
		return "nil URL"
	}
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return "unsupported scheme " + strconv.Quote(s)
	}
	if req.URL.Host == "" && req.Host == "" {
		return "no host in URL"
	}
	if req.Method != "" && !Token(req.Method) {
		return "invalid method " + strconv.Quote(req.Method)
	}
	for name, values := range req.Header {
		if !Token(name) {
			return "invalid header name " + strconv.Quote(name)
		}
		for _, v := range values {
			if !fieldValue(v) {
				return "invalid value for header " + strconv.Quote(name)
			}
		}
	}
	if req.Body == nil && req.ContentLength > 0 {
		return "ContentLength " + strconv.FormatInt(req.ContentLength, 10) + " with a nil Body"
	}
	if g, ok := req.Body.(*guardedBody); ok {
		return g.fault()
	}
	return ""
}

// HopByHop reports the header names (canonical form) that net/http drops,
// rewrites or frames itself, and HTTP/2 forbids: no place for a key.
func HopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Host", "Content-Length":
		return true
	}
	return false
}

// Token reports whether s is an RFC 9110 token (method, header name).
func Token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c <= ' ' || c == 0x7f {
			return false
		}
		switch c {
		case '"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
			return false
		}
	}
	return true
}

// fieldValue reports whether v may be sent as a header value: no control
// bytes but tab (a CR or LF would split the header).
func fieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// GuardBody returns req with its body wrapped so that Invalid can tell a
// body the caller got wrong (its reader failed, or its length differs from
// ContentLength) from a network failure. net/http reports both as plain
// errors. A request without a body, or already guarded, is returned as is.
func GuardBody(req *http.Request) *http.Request {
	if req.Body == nil || req.Body == http.NoBody {
		return req
	}
	if _, ok := req.Body.(*guardedBody); ok {
		return req
	}
	out := new(http.Request)
	*out = *req
	out.Body = &guardedBody{rc: req.Body, want: req.ContentLength}
	return out
}

// guardedBody records what its reader did. net/http reads it from its
// write goroutine, hence the atomics.
type guardedBody struct {
	rc      io.ReadCloser
	want    int64 // ContentLength; <= 0 means unknown
	n       atomic.Int64
	readErr atomic.Bool // the reader failed with something other than EOF
	eof     atomic.Bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	g.n.Add(int64(n))
	switch {
	case err == io.EOF:
		g.eof.Store(true)
	case err != nil:
		g.readErr.Store(true)
	}
	return n, err
}

func (g *guardedBody) Close() error { return g.rc.Close() }

func (g *guardedBody) fault() string {
	n := g.n.Load()
	switch {
	case g.readErr.Load():
		return "request body read failed"
	case g.want > 0 && (n > g.want || (g.eof.Load() && n != g.want)):
		return "ContentLength " + strconv.FormatInt(g.want, 10) + " with a body of " + strconv.FormatInt(n, 10) + " bytes"
	}
	return ""
}
