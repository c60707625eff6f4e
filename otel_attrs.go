package resilient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strconv"

	"github.com/resilient-go/resilient/internal/httpx"
)

// lazyHeader is the propagation carrier of one attempt: the first Set
// copies the request into out with a header map of its own, so a
// propagator with nothing to inject costs no copy and the caller's request
// is never changed.
type lazyHeader struct {
	req, out *http.Request
	ctx      context.Context
}

func (h *lazyHeader) header() http.Header {
	if h.out != nil {
		return h.out.Header
	}
	return h.req.Header
}

func (h *lazyHeader) Get(key string) string { return h.header().Get(key) }

func (h *lazyHeader) Keys() []string {
	hdr := h.header()
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	return keys
}

func (h *lazyHeader) Set(key, value string) {
	if h.out == nil {
		h.out = h.req.WithContext(h.ctx)
		hdr := make(http.Header, len(h.req.Header)+2)
		for k, v := range h.req.Header {
			// Capped so that an append below copies instead of writing
			// into the caller's array.
			hdr[k] = v[:len(v):len(v)]
		}
		h.out.Header = hdr
	}
	h.out.Header[canonicalKey(key)] = []string{value}
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey without the allocation
// for the W3C propagators' lower-case keys.
func canonicalKey(k string) string {
	switch k {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	}
	return http.CanonicalHeaderKey(k)
}

// methodName returns the span name and http.request.method for m, and
// whether m is a method the conventions know.
func methodName(m string) (string, bool) {
	switch m {
	case "":
		return http.MethodGet, true
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return m, true
	}
	return "_OTHER", false
}

func protoVersion(resp *http.Response) string {
	switch {
	case resp.ProtoMajor == 1 && resp.ProtoMinor == 1:
		return "1.1"
	case resp.ProtoMajor == 1 && resp.ProtoMinor == 0:
		return "1.0"
	case resp.ProtoMajor == 2:
		return "2"
	case resp.ProtoMajor == 3:
		return "3"
	}
	return strconv.Itoa(resp.ProtoMajor) + "." + strconv.Itoa(resp.ProtoMinor)
}

// errorType names err for error.type with low cardinality: "timeout",
// "canceled", or the error's Go type.
func errorType(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return reflect.TypeOf(err).String()
}

// callerCancelled reports whether err is the caller's own cancellation of
// ctx, which is a decision, not a failure.
func callerCancelled(ctx context.Context, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(ctx.Err(), context.Canceled)
}

// CloseIdleConnections forwards to the next transport.
func (t *tracingTransport) CloseIdleConnections() { httpx.CloseIdle(t.next) }
