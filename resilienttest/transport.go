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
	"syscall"
	"time"
)

// Transport is an in-memory http.RoundTripper that runs a script of faults
// for every request, as a Server does, without sockets, and records what it
// received. Faults that need a connection behave as they look to a client:
// ResetConn returns an error matching syscall.ECONNRESET, ResetMidBody and
// Truncate give a body that fails after its first bytes.
//
// It starts no goroutine: waits (Latency, Hang, Drip) happen in the
// caller's RoundTrip or body Read and end when the request's context does.
// It is safe for concurrent use; the zero value is not usable.
type Transport struct {
	faults []Fault
	rec    recorder
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport running faults in order. With no faults
// every request gets 200 "OK".
func NewTransport(faults ...Fault) *Transport {
	return &Transport{faults: append([]Fault(nil), faults...)}
}

// Requests returns a copy of the requests received so far, in order of
// arrival (at most MaxRecorded).
func (t *Transport) Requests() []Request { return t.rec.requests() }

// Count reports how many requests the transport has received.
func (t *Transport) Count() int { return t.rec.count() }

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
		return nil, ctx.Err()
	}
	c.finish()
	if c.reset {
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
	if bodyAllowed(req.Method, c.status) {
		h.Set("Content-Length", strconv.Itoa(length))
		resp.ContentLength = int64(length)
		resp.Body = &memBody{
			ctx: ctx, data: body, end: end,
			dripN: c.dripN, dripEvery: c.dripEvery, closed: make(chan struct{}),
		}
	}
	return resp, nil
}

// errReset is the error a read on a reset TCP connection gives.
func errReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

var errBodyClosed = errors.New("http: read on closed response body")

// memBody delivers a response body from memory, paced by Drip, ending with
// end. Read is not safe for concurrent use (as any body); Close may be called
// at any time and ends a pending wait.
type memBody struct {
	ctx       context.Context
	data      []byte
	end       error
	dripN     int
	dripEvery time.Duration
	left      int // bytes left in the current drip piece

	once   sync.Once
	closed chan struct{}
}

func (b *memBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, errBodyClosed
	default:
	}
	if len(b.data) == 0 {
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

func (b *memBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
