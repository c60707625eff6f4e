// Package body tracks a response body so that the stages holding resources
// for a call (a timer, a bulkhead slot, a span) release them exactly once:
// when the caller closes the body, reads it to EOF, or a read fails.
package body

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// Releaser frees what a stage held for one call. Release is called at most
// once per Track.
type Releaser interface {
	Release()
}

// ReadErrorMapper is an optional interface of a Releaser: it may replace the
// error a body read returned (the Timeout stage turns a cancelled read into
// its timeout error).
type ReadErrorMapper interface {
	MapReadError(err error) error
}

// maxReleasers is how many stages can share one wrapper before a second one
// is stacked on top. The standard pipeline needs three: attempt timeout,
// bulkhead and total timeout.
const maxReleasers = 4

// Body wraps a response body. Stages that find a *Body already on a response
// join it instead of allocating another wrapper. The zero value is unused;
// it is set up by Track or TrackInto.
type Body struct {
	rc io.ReadCloser

	mu        sync.Mutex
	released  bool  // guarded by mu
	n         uint8 // guarded by mu; beside released, so that a Body stays 96 bytes
	releasers [maxReleasers]Releaser
}

// switchingBody keeps io.Writer for 101 Switching Protocols responses, whose
// body is the upgraded connection.
type switchingBody struct {
	*Body
}

func (s switchingBody) Write(p []byte) (int, error) {
	return s.rc.(io.Writer).Write(p)
}

// Track arranges for r.Release to run once the body of resp is done with.
// A response without a body (nil or http.NoBody) releases at once.
func Track(resp *http.Response, r Releaser) {
	TrackInto(resp, nil, r)
}

// TrackInto is Track with caller-provided storage for the wrapper, so a
// stage that already allocates a per-call struct can embed the Body in it.
// storage may be nil.
//
// It returns the wrapper r joined, or nil when r was released at once.
func TrackInto(resp *http.Response, storage *Body, r Releaser) *Body {
	if resp.Body == nil || resp.Body == http.NoBody {
		r.Release()
		return nil
	}
	if b := tracked(resp.Body); b != nil && b.join(r) {
		return b
	}
	if storage == nil {
		storage = new(Body)
	}
	storage.rc = resp.Body
	storage.releasers[0] = r
	storage.n = 1
	if _, ok := resp.Body.(io.Writer); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = switchingBody{storage}
		return storage
	}
	resp.Body = storage
	return storage
}

// Abandon releases what every stage holds for the body, as closing it
// would, without closing it: for a call whose deadline has passed while
// its caller never closed the body, so that a bulkhead slot comes back.
// Reads after it fail as the deadline makes them.
func (b *Body) Abandon() { b.release() }

func tracked(rc io.ReadCloser) *Body {
	switch b := rc.(type) {
	case *Body:
		return b
	case switchingBody:
		return b.Body
	}
	return nil
}

// join adds r to b if there is room. A body already done releases r at once.
func (b *Body) join(r Releaser) bool {
	b.mu.Lock()
	if b.released {
		b.mu.Unlock()
		r.Release()
		return true
	}
	if b.n == maxReleasers {
		b.mu.Unlock()
		return false
	}
	b.releasers[b.n] = r
	b.n++
	b.mu.Unlock()
	return true
}

// Read reads from the wrapped body; EOF or an error releases.
func (b *Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, io.EOF) {
		err = b.mapError(err)
	}
	b.release()
	return n, err
}

// Close closes the wrapped body and releases.
func (b *Body) Close() error {
	err := b.rc.Close()
	b.release()
	return err
}

func (b *Body) mapError(err error) error {
	b.mu.Lock()
	rs := b.releasers
	n := b.n
	b.mu.Unlock()
	for _, r := range rs[:n] {
		if m, ok := r.(ReadErrorMapper); ok {
			err = m.MapReadError(err)
		}
	}
	return err
}

func (b *Body) release() {
	b.mu.Lock()
	if b.released {
		b.mu.Unlock()
		return
	}
	b.released = true
	rs := b.releasers
	n := b.n
	b.mu.Unlock()
	// Outside the lock: a Releaser may run user code (a span end, a callback).
	for _, r := range rs[:n] {
		r.Release()
	}
}
