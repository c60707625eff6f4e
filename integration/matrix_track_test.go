package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// settle bounds every wait for something to finish after a cell's call:
// connections to close, handlers and goroutines to end. It is generous
// because -race on two busy cores is slow; a cell that passes waits only as
// long as the thing takes.
const settle = 5 * time.Second

// tracker sees the client side of one cell: every TCP connection the base
// transport dials, every response body the base transport returns (the
// pipeline must close the ones it discards) and every request body the
// transport is handed (a RoundTripper must close them). It is safe for
// concurrent use.
type tracker struct {
	attempts  atomic.Int64 // RoundTrips that reached the base transport
	firstConn atomic.Int32 // the first attempt's first connection: connUnknown, connReused or connFresh

	mu      sync.Mutex
	closers map[string][]*closeFlag // guarded by mu; "conn", "response body", "request body"
}

func newTracker() *tracker { return &tracker{closers: map[string][]*closeFlag{}} }

// closeFlag records that something was closed.
type closeFlag struct{ closed atomic.Bool }

func (tr *tracker) add(what string) *closeFlag {
	f := new(closeFlag)
	tr.mu.Lock()
	tr.closers[what] = append(tr.closers[what], f)
	tr.mu.Unlock()
	return f
}

// open reports, for each kind of thing tracked, how many are still open.
func (tr *tracker) open() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := map[string]int{}
	for what, fs := range tr.closers {
		for _, f := range fs {
			if !f.closed.Load() {
				n[what]++
			}
		}
	}
	return n
}

// closed reports how many of what have been closed.
func (tr *tracker) closed(what string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, f := range tr.closers[what] {
		if f.closed.Load() {
			n++
		}
	}
	return n
}

// awaitClosed fails t unless every tracked connection and body is closed
// within settle.
func (tr *tracker) awaitClosed(t *testing.T) {
	t.Helper()
	var open map[string]int
	if !poll(func() bool { open = tr.open(); return len(open) == 0 }) {
		t.Errorf("leak: still open %v after %v (after CloseIdleConnections)", open, settle)
	}
}

// dial is the base transport's DialContext: a plain dial whose connection
// is tracked.
func (tr *tracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, flag: tr.add("conn")}, nil
}

type trackedConn struct {
	net.Conn
	flag *closeFlag
}

func (c *trackedConn) Close() error {
	c.flag.closed.Store(true)
	return c.Conn.Close()
}

// body wraps a request body so that its Close is seen.
func (tr *tracker) body(r io.Reader) io.ReadCloser {
	return &trackedBody{r: r, flag: tr.add("request body")}
}

type trackedBody struct {
	r      io.Reader
	closer io.Closer // nil: nothing below to close
	flag   *closeFlag
}

func (b *trackedBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *trackedBody) Close() error {
	b.flag.closed.Store(true)
	if b.closer != nil {
		return b.closer.Close()
	}
	return nil
}

// countingTransport is the bottom of the pipeline, above the real
// *http.Transport: it counts attempts and tracks response bodies.
type countingTransport struct {
	base *http.Transport
	tr   *tracker
}

// What the first attempt's first connection was.
const (
	connUnknown int32 = iota // no connection yet
	connReused               // an idle keep-alive one from the pool
	connFresh                // a new one
)

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.tr.attempts.Add(1) == 1 {
		// Only the first connection: net/http may go on to a second for
		// the same attempt. The trace joins the pipeline's own, if any.
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				state := connFresh
				if i.Reused {
					state = connReused
				}
				c.tr.firstConn.CompareAndSwap(connUnknown, state)
			},
		}))
	}
	resp, err := c.base.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &trackedBody{r: resp.Body, flag: c.tr.add("response body"), closer: resp.Body}
	}
	return resp, err
}

func (c *countingTransport) CloseIdleConnections() { c.base.CloseIdleConnections() }

// poll calls done, with a growing pause, until it reports true or settle
// has passed, and reports whether it did.
func poll(done func() bool) bool {
	end := time.Now().Add(settle)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		if done() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(pause)
	}
}

// The cell label marks every goroutine a cell starts, and every goroutine
// those start (pprof labels are inherited), so that a cell's leaks can be
// told apart from those of the cells running beside it.
const cellLabel = "matrix-cell"

// withCellLabel runs f with the cell label set to id.
func withCellLabel(id string, f func()) {
	pprof.Do(context.Background(), pprof.Labels(cellLabel, id), func(context.Context) { f() })
}

// cellGoroutines returns the stacks of the live goroutines labelled id
// whose stack contains every one of frames (none: all of them).
func cellGoroutines(id string, frames ...string) []string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	mark := `"` + cellLabel + `":"` + id + `"`
	var out []string
	for _, rec := range strings.Split(b.String(), "\n\n") {
		if !strings.Contains(rec, mark) {
			continue
		}
		all := true
		for _, f := range frames {
			all = all && strings.Contains(rec, f)
		}
		if all {
			out = append(out, rec)
		}
	}
	return out
}

// awaitNoGoroutines fails t unless, within settle, no goroutine labelled
// id has all of frames in its stack. what names them in the failure.
func awaitNoGoroutines(t *testing.T, id, what string, frames ...string) {
	t.Helper()
	var left []string
	if !poll(func() bool { left = cellGoroutines(id, frames...); return len(left) == 0 }) {
		t.Errorf("leak: %s still running %v after the cell:\n%s", what, settle, strings.Join(left, "\n\n"))
	}
}
