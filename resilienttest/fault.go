package resilienttest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// A Fault is one step of the script a Server or Transport runs for every
// request. Faults run in the order given. A fault that answers the request
// (Status, Respond, Handle, FailFirst, FailFraction, ResetConn) ends the
// script; the others wait (Latency, Hang), add headers (Header,
// RetryAfter) or shape how the final response's body is delivered (Drip,
// Stall, Truncate, ResetMidBody), and pass the request on. When no fault
// answers, the response is 200 with the body "OK".
//
// So a fault after one that answers every request (Status, Respond,
// Handle, ResetConn, FailFraction with p = 1, or a selector that picks
// every request and holds one of those) could never run: NewServer,
// NewTransport, the selectors and Switch refuse such a script with a panic
// naming both faults. Put headers and body shapes first:
// RetryAfter(time.Second), Status(503) — not Status(503),
// RetryAfter(time.Second). After a fault that answers only some requests
// (FailFirst, OnPath(...)), a later fault runs for the others only.
//
// Faults are safe for concurrent use and may be shared between servers.
type Fault interface {
	// apply runs the fault for one request and reports whether the script
	// ends here (the request was answered or abandoned).
	apply(c *call) bool
	// describe names the fault for messages, and reports whether it
	// answers every request it sees, so that no fault after it can run.
	describe() (name string, always bool)
}

// fault is a Fault made of a function.
type fault struct {
	name   string
	always bool
	fn     func(c *call) bool
}

func (f *fault) apply(c *call) bool                   { return f.fn(c) }
func (f *fault) describe() (name string, always bool) { return f.name, f.always }

// passes returns a fault that never answers: it acts on c and passes on.
func passes(name string, act func(c *call)) Fault {
	return &fault{name: name, fn: func(c *call) bool { act(c); return false }}
}

// Status answers with code and its status text as the body.
func Status(code int) Fault {
	checkStatus("Status", code)
	f := Respond(code, http.StatusText(code)).(*fault)
	f.name = fmt.Sprintf("Status(%d)", code)
	return f
}

// Respond answers with code and body. Put it last in a script to change the
// default response.
func Respond(code int, body string) Fault {
	checkStatus("Respond", code)
	b := []byte(body)
	return &fault{name: fmt.Sprintf("Respond(%d, %q)", code, short(body)), always: true, fn: func(c *call) bool {
		c.status, c.body = code, b
		return true
	}}
}

// short cuts s for a fault's name.
func short(s string) string {
	if len(s) > 20 {
		return s[:17] + "..."
	}
	return s
}

// FailFirst answers the first n requests with status; the later ones pass
// on.
func FailFirst(n, status int) Fault {
	if n < 0 {
		panic(fmt.Sprintf("resilienttest: FailFirst: n = %d, want n >= 0", n))
	}
	checkStatus("FailFirst", status)
	name := fmt.Sprintf("FailFirst(%d, %d)", n, status)
	if n == 0 {
		return passes(name, func(*call) {})
	}
	f := OnRequests(1, n, Status(status)).(*fault)
	f.name = name
	return f
}

// FailFraction answers about a fraction p of the requests with status. The
// choice depends only on seed and the request's number, so a run with the
// same seed and the same order of requests fails the same requests.
func FailFraction(p float64, status int, seed uint64) Fault {
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("resilienttest: FailFraction: p = %v, want 0 <= p <= 1", p))
	}
	checkStatus("FailFraction", status)
	answer := Status(status)
	// unitFloat is below 1, so p = 1 answers every request.
	return &fault{name: fmt.Sprintf("FailFraction(%v, %d, %d)", p, status, seed), always: p == 1, fn: func(c *call) bool {
		if unitFloat(seed, c.n) < p {
			return answer.apply(c)
		}
		return false
	}}
}

// unitFloat maps (seed, n) to [0, 1) with the splitmix64 mixer, applied to
// the seed and then to the pair: cheap, stateless and well spread, so that
// the choice does not depend on goroutine order and nearby seeds differ.
func unitFloat(seed uint64, n int) float64 {
	const golden = 0x9e3779b97f4a7c15
	z := mix64(mix64(seed+golden) + uint64(n)*golden)
	return float64(z>>11) / (1 << 53)
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Latency waits d before passing the request on. The wait ends early,
// abandoning the request, when the client goes away or the server closes.
func Latency(d time.Duration) Fault {
	if d < 0 {
		panic(fmt.Sprintf("resilienttest: Latency: d = %v, want d >= 0", d))
	}
	return &fault{name: fmt.Sprintf("Latency(%v)", d), fn: func(c *call) bool {
		return !c.sleep(d)
	}}
}

// Header sets a response header on whatever response the request gets.
func Header(key, value string) Fault {
	return passes(fmt.Sprintf("Header(%q, %q)", key, short(value)), func(c *call) {
		c.header.Set(key, value)
	})
}

// RetryAfter sets "Retry-After" to d in whole seconds, rounded up. It adds a
// header only: pair it with a status, e.g. FailFirst(1, 503).
func RetryAfter(d time.Duration) Fault {
	if d < 0 {
		panic(fmt.Sprintf("resilienttest: RetryAfter: d = %v, want d >= 0", d))
	}
	secs := int64((d + time.Second - 1) / time.Second)
	f := Header("Retry-After", strconv.FormatInt(secs, 10)).(*fault)
	f.name = fmt.Sprintf("RetryAfter(%v)", d)
	return f
}

// RetryAfterDate sets "Retry-After" to t as an HTTP date (RFC 9110), which
// has a resolution of one second.
func RetryAfterDate(t time.Time) Fault {
	return Header("Retry-After", t.UTC().Format(http.TimeFormat))
}

// ResetConn answers by resetting the connection before any byte of the
// response: the client gets a transport error and no response. Over a
// socket the server closes with SO_LINGER 0, which sends a TCP RST; the
// in-memory Transport returns the error a reset gives, matching
// errors.Is(err, syscall.ECONNRESET).
//
// http.Transport silently resends an idempotent request that fails this way
// on a reused keep-alive connection, so the server may count it twice.
func ResetConn() Fault {
	return &fault{name: "ResetConn()", always: true, fn: func(c *call) bool {
		c.reset = true
		return true
	}}
}

// ResetMidBody sends the response's header and its first n body bytes,
// then resets the connection: reading the body yields those bytes and then
// an error (ECONNRESET). The header announces at least one byte more than
// is sent, so the body can never look complete.
func ResetMidBody(n int) Fault { return cutBody("ResetMidBody", n, true, false) }

// Truncate sends the response's header, announcing the body's full
// Content-Length, and its first n body bytes, then closes the connection
// cleanly: reading the body yields those bytes and then
// io.ErrUnexpectedEOF. The announced length is at least n+1.
func Truncate(n int) Fault { return cutBody("Truncate", n, false, false) }

// Stall sends the response's header, announcing the body's full
// Content-Length, and its first n body bytes at once, then sends nothing
// more until the client goes away or the server closes: a dependency that
// hangs in the middle of a body (Drip, by contrast, waits before its first
// piece). Reading the body yields those bytes and then blocks until the
// client's deadline or cancellation, or the body's Close. When n covers
// the whole body, the announced length is one byte more, so the body can
// never look complete. With Drip, the n bytes arrive in Drip's pieces
// before the stall. A response without a body (HEAD, 204, 304) is sent
// whole.
func Stall(n int) Fault { return cutBody("Stall", n, false, true) }

// cutBody is the fault fn describes: the body is cut after n bytes, by a
// reset (rst), a stall (stall) or else a clean close.
func cutBody(fn string, n int, rst, stall bool) Fault {
	if n < 0 {
		panic(fmt.Sprintf("resilienttest: %s: n = %d, want n >= 0", fn, n))
	}
	return passes(fmt.Sprintf("%s(%d)", fn, n), func(c *call) {
		c.cut, c.rst, c.stall = n, rst, stall
	})
}

// Drip delivers the response's body n bytes at a time, waiting every
// before each piece. The header is sent at once.
func Drip(n int, every time.Duration) Fault {
	if n < 1 {
		panic(fmt.Sprintf("resilienttest: Drip: n = %d, want n >= 1", n))
	}
	if every < 0 {
		panic(fmt.Sprintf("resilienttest: Drip: every = %v, want every >= 0", every))
	}
	return passes(fmt.Sprintf("Drip(%d, %v)", n, every), func(c *call) {
		c.dripN, c.dripEvery = n, every
	})
}

// HangFault holds requests until Release, until their client goes away or
// until the server closes. Create it with Hang. It is safe for concurrent
// use.
type HangFault struct {
	released chan struct{}
	once     sync.Once

	mu        sync.Mutex
	waiting   int           // guarded by mu
	abandoned int           // guarded by mu
	changed   chan struct{} // guarded by mu; closed and replaced when a count changes
}

// Hang returns a fault that holds every request reaching it until Release.
// A released request passes on to the next fault.
func Hang() *HangFault {
	return &HangFault{released: make(chan struct{}), changed: make(chan struct{})}
}

// Release lets every held request go on, and every later one pass at once.
// It may be called more than once.
func (h *HangFault) Release() {
	h.once.Do(func() { close(h.released) })
}

// Waiting reports how many requests the fault holds now.
func (h *HangFault) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waiting
}

// Abandoned reports how many held requests have ended because their
// client went away (a timeout, a cancelled hedge) rather than by Release or
// the server's Close: proof that the client gave up on the server's side
// too. On a Server the count follows the client's error by a moment; use
// AwaitAbandoned to wait for it.
func (h *HangFault) Abandoned() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.abandoned
}

// Await blocks until the fault holds at least n requests at once, and
// returns ctx.Err() if ctx ends first. Tests use it to know that calls are
// in flight before acting on them.
func (h *HangFault) Await(ctx context.Context, n int) error {
	return h.await(ctx, func() bool { return h.waiting >= n })
}

// AwaitAbandoned blocks until Abandoned reports at least n, and returns
// ctx.Err() if ctx ends first.
func (h *HangFault) AwaitAbandoned(ctx context.Context, n int) error {
	return h.await(ctx, func() bool { return h.abandoned >= n })
}

// await blocks until done, which requires mu held, reports true.
func (h *HangFault) await(ctx context.Context, done func() bool) error {
	for {
		h.mu.Lock()
		ok, ch := done(), h.changed
		h.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// count changes the counts by the deltas and wakes the waiters of await.
func (h *HangFault) count(waiting, abandoned int) {
	h.mu.Lock()
	h.waiting += waiting
	h.abandoned += abandoned
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

func (h *HangFault) describe() (string, bool) { return "Hang()", false }

func (h *HangFault) apply(c *call) bool {
	select {
	case <-h.released:
		return false
	default:
	}
	h.count(1, 0)
	if c.wait(h.released, nil) {
		h.count(-1, 0)
		return false
	}
	gone := 0
	if c.clientGone {
		gone = 1
	}
	h.count(-1, gone)
	return true
}

func checkStatus(fn string, code int) {
	if code < 200 || code > 999 {
		panic(fmt.Sprintf("resilienttest: %s: status = %d, want 200 <= status <= 999", fn, code))
	}
}
