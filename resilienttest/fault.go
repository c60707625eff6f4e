package resilienttest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A Fault is one step of the script a Server or Transport runs for every
// request. Faults run in the order given. A fault that answers the request
// (Status, Respond, FailFirst, FailFraction, ResetConn) ends the script;
// the others wait (Latency, Hang), add headers (Header, RetryAfter) or shape
// how the final response's body is delivered (Drip, Stall, Truncate,
// ResetMidBody), and pass the request on. When no fault answers, the
// response is 200 with the body "OK".
//
// Faults are safe for concurrent use and may be shared between servers.
type Fault interface {
	// apply runs the fault for one request and reports whether the script
	// ends here (the request was answered or abandoned).
	apply(c *call) bool
}

type faultFunc func(c *call) bool

func (f faultFunc) apply(c *call) bool { return f(c) }

// Status answers with code and its status text as the body.
func Status(code int) Fault {
	checkStatus("Status", code)
	return Respond(code, http.StatusText(code))
}

// Respond answers with code and body. Put it last in a script to change the
// default response.
func Respond(code int, body string) Fault {
	checkStatus("Respond", code)
	b := []byte(body)
	return faultFunc(func(c *call) bool {
		c.status, c.body = code, b
		return true
	})
}

// FailFirst answers the first n requests with status; the later ones pass
// on.
func FailFirst(n, status int) Fault {
	if n < 0 {
		panic(fmt.Sprintf("resilienttest: FailFirst: n = %d, want n >= 0", n))
	}
	checkStatus("FailFirst", status)
	if n == 0 {
		return faultFunc(func(*call) bool { return false })
	}
	return OnRequests(1, n, Status(status))
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
	return faultFunc(func(c *call) bool {
		if unitFloat(seed, c.n) < p {
			return answer.apply(c)
		}
		return false
	})
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
	return faultFunc(func(c *call) bool {
		return !c.sleep(d)
	})
}

// Header sets a response header on whatever response the request gets.
func Header(key, value string) Fault {
	return faultFunc(func(c *call) bool {
		c.header.Set(key, value)
		return false
	})
}

// RetryAfter sets "Retry-After" to d in whole seconds, rounded up. It adds a
// header only: pair it with a status, e.g. FailFirst(1, 503).
func RetryAfter(d time.Duration) Fault {
	if d < 0 {
		panic(fmt.Sprintf("resilienttest: RetryAfter: d = %v, want d >= 0", d))
	}
	secs := int64((d + time.Second - 1) / time.Second)
	return Header("Retry-After", strconv.FormatInt(secs, 10))
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
	return faultFunc(func(c *call) bool {
		c.reset = true
		return true
	})
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
	return faultFunc(func(c *call) bool {
		c.cut, c.rst, c.stall = n, rst, stall
		return false
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
	return faultFunc(func(c *call) bool {
		c.dripN, c.dripEvery = n, every
		return false
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

// OnRequests applies faults only to requests numbered from to to,
// inclusive; requests are numbered from 1 in order of arrival.
func OnRequests(from, to int, faults ...Fault) Fault {
	if from < 1 || to < from {
		panic(fmt.Sprintf("resilienttest: OnRequests: from = %d, to = %d, want 1 <= from <= to", from, to))
	}
	return when(func(c *call) bool { return c.n >= from && c.n <= to }, faults)
}

// After applies faults to every request after the nth: "the dependency
// goes down after n calls".
func After(n int, faults ...Fault) Fault {
	if n < 0 {
		panic(fmt.Sprintf("resilienttest: After: n = %d, want n >= 0", n))
	}
	return when(func(c *call) bool { return c.n > n }, faults)
}

// Every applies faults to requests n, 2n, 3n, ...
func Every(n int, faults ...Fault) Fault {
	if n < 1 {
		panic(fmt.Sprintf("resilienttest: Every: n = %d, want n >= 1", n))
	}
	return when(func(c *call) bool { return c.n%n == 0 }, faults)
}

// OnMethod applies faults only to requests with the given method.
func OnMethod(method string, faults ...Fault) Fault {
	return when(func(c *call) bool { return c.req.Method == method }, faults)
}

// OnPath applies faults only to requests for the given URL path.
func OnPath(path string, faults ...Fault) Fault {
	return when(func(c *call) bool { return c.req.URL.Path == path }, faults)
}

// SwitchFault applies its faults only while it is on, so a test can take a
// dependency down and bring it back between calls ("down now", "up
// again"). Create it with Switch. It is safe for concurrent use.
type SwitchFault struct {
	on     atomic.Bool
	faults []Fault
}

// Switch returns a fault, off at first, that applies faults while it is on.
func Switch(faults ...Fault) *SwitchFault {
	return &SwitchFault{faults: append([]Fault(nil), faults...)}
}

// On applies the faults to the requests that arrive from now on.
func (s *SwitchFault) On() { s.on.Store(true) }

// Off lets the requests that arrive from now on pass the faults by.
func (s *SwitchFault) Off() { s.on.Store(false) }

func (s *SwitchFault) apply(c *call) bool {
	if !s.on.Load() {
		return false
	}
	return runScript(c, s.faults)
}

func when(match func(*call) bool, faults []Fault) Fault {
	faults = append([]Fault(nil), faults...)
	return faultFunc(func(c *call) bool {
		if !match(c) {
			return false
		}
		return runScript(c, faults)
	})
}

func runScript(c *call, faults []Fault) bool {
	for _, f := range faults {
		if f != nil && f.apply(c) {
			return true
		}
	}
	return false
}

func checkStatus(fn string, code int) {
	if code < 200 || code > 999 {
		panic(fmt.Sprintf("resilienttest: %s: status = %d, want 200 <= status <= 999", fn, code))
	}
}
