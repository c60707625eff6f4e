package resilienttest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// Handle answers every request by calling h, as an http.Handler would, on
// a Server and on a Transport alike: a fake whose answer depends on the
// request (echo a header, route on the path, parse the body).
//
// h gets a copy of the request whose Body holds what the kit recorded (the
// first MaxBody bytes) and whose context ends when the client goes away.
// The response h writes is collected whole, then sent as the faults before
// Handle shape it (Drip, Stall, Truncate, ResetMidBody); headers set by
// Header or RetryAfter before it are already in w.Header(), and h may
// change them. Writing nothing gives 200 with an empty body; informational
// (1xx) status codes are not sent. h must be safe for concurrent use.
func Handle(h func(w http.ResponseWriter, r *http.Request)) Fault {
	if h == nil {
		panic("resilienttest: Handle: nil handler")
	}
	return &fault{name: "Handle(...)", always: true, fn: func(c *call) bool {
		r := c.req.Clone(c.req.Context())
		r.Body = io.NopCloser(bytes.NewReader(c.reqBody))
		r.GetBody = nil
		if r.RequestURI == "" {
			// A Transport's request is a client's: give h what a server sees.
			r.RequestURI = r.URL.RequestURI()
		}
		w := &handleWriter{header: c.header}
		h(w, r)
		c.status, c.body = w.status, w.body.Bytes()
		if c.status == 0 {
			c.status = http.StatusOK
		}
		if w.sent != nil {
			c.header = w.sent
		}
		return true
	}}
}

// handleWriter collects a handler's response.
type handleWriter struct {
	header http.Header
	sent   http.Header // header as of WriteHeader, as net/http sends it
	status int
	body   bytes.Buffer
}

func (w *handleWriter) Header() http.Header { return w.header }

func (w *handleWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		// What net/http does with a code that cannot be sent.
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return
	}
	w.status, w.sent = code, w.header.Clone()
}

func (w *handleWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(p)
}
