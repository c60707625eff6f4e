package resilienttest

import (
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Bounds that keep a long or careless test from growing without limit.
const (
	// MaxBody is how many bytes of each request body are recorded; the rest
	// is left unread.
	MaxBody = 1 << 20
	// MaxRecorded is how many requests are kept for Requests; Count goes on
	// counting past it.
	MaxRecorded = 10000
)

// Request is what a Server or Transport received. Its fields must not be
// modified.
type Request struct {
	N             int         // 1 for the first request received, in order of arrival
	At            time.Time   // when it arrived
	Method        string      // "GET", "POST", ...
	URL           *url.URL    // path and query only, as a server sees them
	Host          string      // the Host header, or the URL's host
	Header        http.Header // as received, e.g. Idempotency-Key, traceparent
	Body          []byte      // the body, up to MaxBody bytes
	BodyTruncated bool        // the body was longer than MaxBody
}

// recorder numbers and keeps requests, and counts those in flight; safe
// for concurrent use.
type recorder struct {
	mu       sync.Mutex
	n        int       // guarded by mu
	reqs     []Request // guarded by mu
	inFlight int       // guarded by mu
	peak     int       // guarded by mu
}

// start reads and records r (closing its body when closeBody is set),
// counts it in flight until end, and returns the call the faults run on.
func (rec *recorder) start(r *http.Request, closeBody bool, done, closing <-chan struct{}) *call {
	at := time.Now()
	var body []byte
	truncated := false
	if r.Body != nil && r.Body != http.NoBody {
		body, _ = io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		if len(body) > MaxBody {
			body, truncated = body[:MaxBody], true
		}
		if closeBody {
			_ = r.Body.Close()
		}
	}
	u := &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	rq := Request{
		At: at, Method: r.Method, URL: u, Host: host,
		Header: r.Header.Clone(), Body: body, BodyTruncated: truncated,
	}
	if rq.Header == nil {
		rq.Header = http.Header{}
	}

	rec.mu.Lock()
	rec.n++
	rq.N = rec.n
	if len(rec.reqs) < MaxRecorded {
		rec.reqs = append(rec.reqs, rq)
	}
	rec.inFlight++
	rec.peak = max(rec.peak, rec.inFlight)
	rec.mu.Unlock()

	return &call{n: rq.N, req: r, reqBody: body, done: done, closing: closing, header: http.Header{}, cut: -1}
}

// end marks a request started by start as no longer in flight; call it
// once per request.
func (rec *recorder) end() {
	rec.mu.Lock()
	rec.inFlight--
	rec.mu.Unlock()
}

// reset forgets the requests received and numbers the next one 1. The
// requests in flight stay counted in flight until they end.
func (rec *recorder) reset() {
	rec.mu.Lock()
	rec.n, rec.reqs, rec.peak = 0, nil, rec.inFlight
	rec.mu.Unlock()
}

func (rec *recorder) inFlightNow() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.inFlight
}

func (rec *recorder) peakInFlight() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.peak
}

func (rec *recorder) requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Request(nil), rec.reqs...)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.n
}

// call is one request going through a script, and the response the script
// builds for it.
type call struct {
	n       int
	req     *http.Request
	reqBody []byte          // as recorded
	done    <-chan struct{} // the client went away
	closing <-chan struct{} // the server is closing; nil for a Transport

	status     int
	header     http.Header
	body       []byte
	reset      bool // reset the connection instead of answering
	cut        int  // body bytes sent before the connection drops or stalls; -1: all
	rst        bool // the drop is a reset, not a clean close
	stall      bool // after cut bytes, send nothing until the client or server goes away
	dripN      int
	dripEvery  time.Duration
	abandoned  bool // a wait ended because the client or the server went away
	clientGone bool // ... and it was the client
}

// wait blocks until ch is closed or tick fires and reports true, or until
// the client or the server goes away and reports false.
func (c *call) wait(ch <-chan struct{}, tick <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	case <-tick:
		return true
	case <-c.done:
		c.clientGone = true
	case <-c.closing:
	}
	c.abandoned = true
	return false
}

// sleep waits d; see wait.
func (c *call) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	return c.wait(nil, t.C)
}

// finish fills in the default response once the script has run.
func (c *call) finish() {
	if c.status == 0 {
		c.status, c.body = http.StatusOK, []byte("OK")
	}
	if c.header.Get("Content-Type") == "" {
		c.header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if !bodyAllowed(c.req.Method, c.status) {
		c.body = nil
		if c.stall {
			// Nothing to stall in: send the response whole.
			c.stall, c.cut = false, -1
		}
	}
}

// sent returns the body bytes to send and the Content-Length to announce.
func (c *call) sent() (body []byte, length int) {
	if c.cut < 0 {
		return c.body, len(c.body)
	}
	n := min(c.cut, len(c.body))
	return c.body[:n], max(len(c.body), n+1)
}

func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status != http.StatusNoContent &&
		status != http.StatusNotModified && status >= 200
}
