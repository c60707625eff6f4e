package resilient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/resilient-go/resilient/internal/body"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/httpx"
	"github.com/resilient-go/resilient/internal/telemetry"
)

// FallbackFunc answers a call that failed. req is the caller's request;
// resp is the last response if the call ended with a failure status (5xx or
// 429), with its body unread; err is the error if it ended with one. Exactly
// one of resp and err is non-nil.
//
// It returns the response the caller gets, or an error. It may return resp
// itself (the caller then gets the failure as it was); any other response
// makes the stage drain and close resp, so a FallbackFunc must not close it.
// Returning (nil, nil) is a bug, which the stage reports as an error.
// Returning (resp, err) unchanged means "no fallback for this call".
type FallbackFunc func(req *http.Request, resp *http.Response, err error) (*http.Response, error)

// Fallback calls f when the call below fails: with an error (a refused
// connection, a timeout, ErrCircuitOpen, ErrBulkheadFull) or a 5xx or 429
// status, after whatever retries run below. A success, or any other status,
// never reaches f. In the standard pipeline it is the outermost stage
// (WithFallback), so it sees the final outcome of everything below.
//
// When the caller's own context has ended, the caller has given up and f is
// not called: the failure is returned as it is. Nor is it called for a
// *RequestError: a request net/http refuses is a bug to see, not an
// outage to cover.
//
// Fallback panics if f is nil.
func Fallback(f FallbackFunc) Middleware { return fallbackStage(f, nil) }

// fallbackStage is Fallback reporting its decisions to sink (nil: span events).
func fallbackStage(f FallbackFunc, sink telemetry.Sink) Middleware {
	if f == nil {
		panic("resilient: Fallback needs a FallbackFunc, got nil")
	}
	return func(next http.RoundTripper) http.RoundTripper {
		return &fallbackTransport{next: httpx.OrDefault(next), f: f, sink: sink, clock: clock.Real}
	}
}

// WithFallback puts a Fallback stage with f outermost in the standard
// pipeline; the pipeline has none by default. It panics if f is nil.
//
// To serve stale GET responses when a dependency fails, record them below
// the pipeline and serve them from the top:
//
//	cache := resilient.NewStaleCache(resilient.StaleCachePolicy{})
//	rt := resilient.NewTransport(cache.Record(base), resilient.WithFallback(cache.Fallback))
func WithFallback(f FallbackFunc) Option {
	if f == nil {
		panic("resilient: WithFallback needs a FallbackFunc, got nil")
	}
	return stageOption(StageFallback, func(c *config) { c.fallback = f })
}

type fallbackTransport struct {
	next  http.RoundTripper
	f     FallbackFunc
	sink  telemetry.Sink // nil: span events
	clock clock.Clock
}

var _ http.RoundTripper = (*fallbackTransport)(nil)

func (t *fallbackTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inTime(req)
	if err == nil && !httpx.FailureStatus(resp.StatusCode) {
		return resp, nil
	}
	resp, err = httpx.Settle(resp, err)
	if err != nil {
		// A caller's mistake is a bug to see, not an outage to cover.
		if mistake, ok := asRequestError(req, err); ok {
			return nil, mistake
		}
	}
	if req.Context().Err() != nil || noFallback(req) {
		return resp, err
	}
	return t.fallback(req, resp, err)
}

// inTime sends req below so that a call whose answer would come after the
// caller's deadline is given up while there is time left to answer with
// the fallback: the response headers must arrive a tenth of the time
// left before the deadline (between 1 ms and 100 ms). Without a deadline,
// or without time to spare, req goes as it is. The body, once the headers
// are in, is not hurried.
func (t *fallbackTransport) inTime(req *http.Request) (*http.Response, error) {
	dl, ok := req.Context().Deadline()
	if !ok {
		return t.next.RoundTrip(req)
	}
	left := time.Until(dl)
	reserve := min(max(left/10, time.Millisecond), 100*time.Millisecond)
	if left <= 2*reserve {
		return t.next.RoundTrip(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	timer := t.clock.AfterFunc(left-reserve, cancel)
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	inTime := timer.Stop()
	if err == nil && inTime {
		body.Track(resp, cancelFunc(cancel))
		return resp, nil
	}
	cancel()
	if !inTime && req.Context().Err() == nil {
		httpx.Discard(resp)
		return nil, &TimeoutError{After: left - reserve, Err: err, Which: "fallback's", Authority: httpx.AuthorityOf(req).String()}
	}
	return resp, err
}

// fallback runs f and settles who owns which response.
func (t *fallbackTransport) fallback(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	out, ferr := t.f(req, resp, err)
	if ferr != nil {
		if out != nil && out != resp {
			httpx.Discard(out)
		}
		httpx.Discard(resp)
		return nil, ferr
	}
	if out == nil {
		httpx.Discard(resp)
		return nil, nilFallbackError(resp, err)
	}
	if out != resp {
		markFallback(out)
		httpx.Discard(resp)
		ev := telemetry.Event{Kind: telemetry.Fallback, Err: err, Request: req}
		if resp != nil {
			ev.Status = resp.StatusCode
		}
		telemetry.Emit(req.Context(), t.sink, ev)
	}
	return out, nil
}

// markFallback marks a response the FallbackFunc made up, unless it marked
// it itself.
func markFallback(out *http.Response) {
	if out.Header == nil {
		out.Header = http.Header{}
	}
	if out.Header.Get(FallbackHeader) == "" {
		out.Header.Set(FallbackHeader, "true")
	}
}

func nilFallbackError(resp *http.Response, err error) error {
	const msg = "resilient: FallbackFunc returned neither a response nor an error"
	if err != nil {
		return fmt.Errorf(msg+" for a call that failed with: %w", err)
	}
	return fmt.Errorf(msg+" for a call that failed with status %d", resp.StatusCode)
}

// CloseIdleConnections forwards to the next transport.
func (t *fallbackTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }

// FallbackHeader marks a response a Fallback stage made up rather than the
// dependency sent, so code and logs can tell them apart: its value says
// which ("static", "stale", or "true" for a FallbackFunc of the caller's).
const FallbackHeader = "X-Resilient-Fallback"

// StaticFallback returns a FallbackFunc that answers every failed GET and
// HEAD call with the same response: status, a copy of header (nil means
// none) and body, marked with FallbackHeader: static. Other methods get
// their failure as it was: a made-up 200 to a failed POST /orders would
// say the order was placed. Use StaticFallbackAnyMethod when that is what
// you mean. Each call gets its own header map and a fresh body reader, so
// callers may change and read them freely. It panics if status is not in
// 100-599.
func StaticFallback(status int, header http.Header, body string) FallbackFunc {
	f := StaticFallbackAnyMethod(status, header, body)
	return func(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
		switch req.Method {
		case "", http.MethodGet, http.MethodHead:
			return f(req, resp, err)
		}
		return resp, err
	}
}

// StaticFallbackAnyMethod is StaticFallback for calls of every method.
func StaticFallbackAnyMethod(status int, header http.Header, body string) FallbackFunc {
	if status < 100 || status > 599 {
		panic("resilient: StaticFallback needs a status in 100-599, got " + strconv.Itoa(status))
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(FallbackHeader, "static")
	statusLine := strconv.Itoa(status) + " " + http.StatusText(status)
	return func(req *http.Request, _ *http.Response, _ error) (*http.Response, error) {
		return &http.Response{
			Status:        statusLine,
			StatusCode:    status,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        h.Clone(),
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       req,
		}, nil
	}
}
