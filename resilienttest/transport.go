package resilienttest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Transport is an in-memory http.RoundTripper that runs a script of faults
// for every request, as a Server does, without sockets, and records what it
// received. Faults that need a connection behave as they look to a client:
// ResetConn returns an error matching syscall.ECONNRESET, ResetMidBody and
// Truncate give a body that fails after its first bytes, Stall one that
// blocks after them.
//
// It starts no goroutine: waits (Latency, Hang, Drip, Stall) happen in the
// caller's RoundTrip or body Read and end when the request's context does
// (or, in a body's Read, when the body is closed).
// It is safe for concurrent use; the zero value is not usable.
type Transport struct {
	faults []Fault
	rec    recorder
	open   atomic.Int64 // bodies handed out and not closed
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport running faults in order. With no faults
// every request gets 200 "OK". It panics if a fault can never run (see
// Fault).
func NewTransport(faults ...Fault) *Transport {
	faults = append([]Fault(nil), faults...)
	checkScript("NewTransport", faults)
	return &Transport{faults: faults}
}

// ResetCounts starts a new phase of a test, as Server.ResetCounts does:
// the transport forgets the requests it received, numbers the next one 1
// and counts PeakInFlight from now. InFlight and OpenBodies are untouched.
func (t *Transport) ResetCounts() { t.rec.reset() }

// Requests returns a copy of the requests received so far, in order of
// arrival (at most MaxRecorded).
func (t *Transport) Requests() []Request { return t.rec.requests() }

// Count reports how many requests the transport has received.
func (t *Transport) Count() int { return t.rec.count() }

// InFlight reports how many requests the transport is handling now, as a
// Server counts them: from RoundTrip until the whole response is
// available, which for Drip and Stall is later, in the body's Read. A body
// that is read or closed early ends the count too.
func (t *Transport) InFlight() int { return t.rec.inFlightNow() }

// PeakInFlight reports the most requests the transport has handled at
// once, as InFlight counts them: what a test of a concurrency limit checks.
func (t *Transport) PeakInFlight() int { return t.rec.peakInFlight() }

// OpenBodies reports how many response bodies the transport has handed
// out that are not closed yet. Once a client is done it should be 0: the
// http.Client contract asks for every body to be closed, even one read to
// the end, so this is a leak check. A response without a body (HEAD, 204,
// 304) gets http.NoBody and is not counted.
func (t *Transport) OpenBodies() int { return int(t.open.Load()) }

// RoundTrip runs the script for req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	c := t.rec.start(req, true, ctx.Done(), nil)
	runScript(c, t.faults)
	if c.abandoned {
		t.rec.end()
		return nil, ctx.Err()
	}
	c.finish()
	if c.reset {
		t.rec.end()
		return nil, errReset()
	}

	body, length := c.sent()
	end := io.EOF
	if c.cut >= 0 {
		end = io.ErrUnexpectedEOF
		if c.rst {
			end = errReset()
		}
	}
	h := c.header
	resp := &http.Response{
		Status:     strconv.Itoa(c.status) + " " + http.StatusText(c.status),
		StatusCode: c.status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Close:      c.cut >= 0,
		Request:    req,
	}
	delivered := t.rec.end
	if bodyAllowed(req.Method, c.status) {
		h.Set("Content-Length", strconv.Itoa(length))
		resp.ContentLength = int64(length)
		b := &memBody{
			ctx: ctx, data: body, end: end, stall: c.stall,
			dripN: c.dripN, dripEvery: c.dripEvery, closed: make(chan struct{}),
			onClose: func() { t.open.Add(-1) },
		}
		t.open.Add(1)
		resp.Body = b
		if c.stall || (c.dripN > 0 && len(body) > 0) {
			// The rest of the response comes out in Read.
			b.delivered = sync.OnceFunc(t.rec.end)
			delivered = nil
		}
	}
	if delivered != nil {
		delivered()
	}
	return resp, nil
}

// errReset is the error a read on a reset TCP connection gives.
func errReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

var errBodyClosed = errors.New("http: read on closed response body")

// memBody delivers a response body from memory, paced by Drip, ending with
// end or, for Stall, with a wait for the client to go away. Read is not
// safe for concurrent use (as any body); Close may be called at any time
// and ends a pending wait.
type memBody struct {
	ctx       context.Context
	data      []byte
	end       error
	stall     bool
	dripN     int
	dripEvery time.Duration
	left      int // bytes left in the current drip piece

	// delivered, if not nil, ends the request's count in flight once the
	// whole response is out, the read fails or the body is closed.
	delivered func()
	onClose   func()

	once   sync.Once
	closed chan struct{}
}

func (b *memBody) Read(p []byte) (int, error) {
	n, err := b.read(p)
	if err != nil && b.delivered != nil {
		b.delivered()
	}
	return n, err
}

func (b *memBody) read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, errBodyClosed
	default:
	}
	if len(b.data) == 0 {
		if b.stall {
			return 0, b.waitGone()
		}
		return 0, b.end
	}
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	n := len(b.data)
	if b.dripN > 0 {
		if b.left == 0 {
			if err := b.pause(); err != nil {
				return 0, err
			}
			b.left = b.dripN
			if n <= b.left && !b.stall && b.delivered != nil {
				b.delivered() // the last piece is out
			}
		}
		n = min(n, b.left)
	}
	n = copy(p, b.data[:n])
	b.data = b.data[n:]
	if b.dripN > 0 {
		b.left -= n
	}
	return n, nil
}

func (b *memBody) pause() error {
	if b.dripEvery <= 0 {
		return nil
	}
	t := time.NewTimer(b.dripEvery)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-b.closed:
		return errBodyClosed
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// waitGone is the stall: it returns only when the body is closed or the
// request's context ends.
func (b *memBody) waitGone() error {
	select {
	case <-b.closed:
		return errBodyClosed
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

func (b *memBody) Close() error {
	b.once.Do(func() {
		close(b.closed)
		b.onClose()
		if b.delivered != nil {
			b.delivered()
		}
	})
	return nil
}
