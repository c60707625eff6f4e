// Package httpx holds the small HTTP rules every stage shares: which
// requests may be sent twice, how to rewind a body, how to discard a
// response without losing its connection, and how to name a host.
package httpx

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// CloseIdle forwards CloseIdleConnections to rt if it has the method, so
// http.Client.CloseIdleConnections still reaches the base transport through
// a chain of stages.
func CloseIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// OrDefault returns rt, or http.DefaultTransport when rt is nil.
func OrDefault(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		return http.DefaultTransport
	}
	return rt
}

// DrainLimit bounds how much of a discarded body is read so that its
// connection can go back to the pool. Past it, closing is cheaper than
// reading.
const DrainLimit = 64 << 10

// DrainTime bounds how long a discarded body is read. 64 KiB arrives in
// 5 ms at 100 Mbit/s; a body slower than that (a stalled error page) is not
// worth its connection, and nobody should wait on it: not the next attempt,
// not the fallback.
const DrainTime = 5 * time.Millisecond

// Discard reads at most DrainLimit bytes of resp's body, for at most
// DrainTime, and closes it. A body read to its end lets net/http reuse the
// connection; the pool is never flushed.
func Discard(resp *http.Response) {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	// Closing the body ends a read that waits for bytes that do not come;
	// net/http's response bodies allow Close during Read.
	cutDone := make(chan struct{})
	cut := time.AfterFunc(DrainTime, func() {
		_ = resp.Body.Close()
		close(cutDone)
	})
	_, _ = io.CopyN(io.Discard, resp.Body, DrainLimit)
	if !cut.Stop() {
		<-cutDone // no goroutine of ours outlives the call
		return
	}
	_ = resp.Body.Close()
}

// CloseRequestBody closes req's body on a path that returns before the
// request reaches a transport, as the RoundTripper contract requires.
func CloseRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// IdempotencyHeaders are the headers net/http's isReplayable takes for an
// idempotency key, and Retry takes for the caller's own when no
// IdempotencyKey stage says otherwise.
var IdempotencyHeaders = [...]string{"Idempotency-Key", "X-Idempotency-Key"}

// Rewind returns a request for a further attempt: a shallow copy of req
// with a fresh body from GetBody. Headers are shared, not copied; stages
// that change headers clone first. It fails only if GetBody fails.
func Rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	out := new(http.Request)
	*out = *req
	out.Body = body
	return out, nil
}

// Authority names the server a request goes to: scheme, host and port,
// with the default port made explicit and the host in lower case, so that
// http://h, http://h:80 and http://H share one breaker and one pool (host
// names are case-insensitive, RFC 4343). It is comparable, so it can key a
// map, and making one allocates only for a host with upper-case letters.
type Authority struct {
	Scheme, Host, Port string
}

// AuthorityOf returns the authority req is sent to.
func AuthorityOf(req *http.Request) Authority {
	u := req.URL
	host := u.Host
	if host == "" {
		host = req.Host
	}
	a := Authority{Scheme: u.Scheme}
	if i := portColon(host); i >= 0 {
		a.Host, a.Port = host[:i], host[i+1:]
	} else {
		a.Host = host
		if u.Scheme == "https" {
			a.Port = "443"
		} else {
			a.Port = "80"
		}
	}
	if len(a.Host) > 1 && a.Host[0] == '[' && a.Host[len(a.Host)-1] == ']' {
		a.Host = a.Host[1 : len(a.Host)-1]
	}
	a.Host = lower(a.Host)
	return a
}

// lower is strings.ToLower for ASCII, returning s itself (no allocation)
// when it has no upper-case letter.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// String formats a as scheme://host:port.
func (a Authority) String() string {
	host := a.Host
	for i := 0; i < len(host); i++ {
		if host[i] == ':' {
			host = "[" + host + "]"
			break
		}
	}
	return a.Scheme + "://" + host + ":" + a.Port
}

// portColon returns the index of the colon before a numeric port at the end
// of host, or -1. It allows for IPv6 brackets.
func portColon(host string) int {
	for i := len(host) - 1; i >= 0; i-- {
		c := host[i]
		switch {
		case c == ':':
			if i == len(host)-1 {
				return -1
			}
			return i
		case c < '0' || c > '9':
			return -1
		}
	}
	return -1
}
