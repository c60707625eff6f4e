//go:build soak

package integration

import (
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Modes of a flapping dependency, in the order of their letters in the
// soak table: H, S, F, D.
const (
	modeHealthy int32 = iota
	modeSlow
	modeFailing
	modeDead
)

// flappingDep is a loopback HTTP server whose behaviour its mode sets:
// healthy (a fast 200), slow (20-300 ms), failing (5xx, resets, truncated
// bodies, some 200s) or dead (listener closed, connections dropped: the
// client is refused).
type flappingDep struct {
	addr string
	mode atomic.Int32
	srv  *http.Server

	serving  sync.WaitGroup // Serve loops
	handlers sync.WaitGroup

	mu      sync.Mutex
	ln      net.Listener          // guarded by mu; nil while dead
	conns   map[net.Conn]struct{} // guarded by mu
	stopped bool                  // guarded by mu
}

var soakPayload = strings.Repeat("p", 512)

func startFlappingDep(t *testing.T) *flappingDep {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &flappingDep{addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	d.srv = &http.Server{
		Handler:           http.HandlerFunc(d.serve),
		ConnState:         d.track,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	d.listenLocked(ln)
	return d
}

func (d *flappingDep) listenLocked(ln net.Listener) {
	d.ln = ln
	d.serving.Go(func() { _ = d.srv.Serve(ln) })
}

func (d *flappingDep) track(c net.Conn, st http.ConnState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch st {
	case http.StateNew:
		d.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(d.conns, c)
	}
}

// setMode switches the dependency to m. Dying closes the listener and
// every connection; coming back listens on the same address again (if
// that fails, the dependency stays dead until the next change).
func (d *flappingDep) setMode(m int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	switch {
	case m == modeDead && d.ln != nil:
		_ = d.ln.Close()
		d.ln = nil
		for c := range d.conns {
			_ = c.Close()
		}
	case m != modeDead && d.ln == nil:
		ln, err := net.Listen("tcp", d.addr)
		if err != nil {
			m = modeDead
			break
		}
		d.listenLocked(ln)
	}
	d.mode.Store(m)
}

func (d *flappingDep) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	_ = d.srv.Close()
	d.handlers.Wait()
	d.serving.Wait()
}

func (d *flappingDep) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.handlers.Add(1)
	d.mu.Unlock()
	defer d.handlers.Done()

	switch d.mode.Load() {
	case modeSlow:
		t := time.NewTimer(20*time.Millisecond + rand.N(280*time.Millisecond))
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	case modeFailing:
		switch n := rand.IntN(10); {
		case n < 3:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case n == 3:
			// Longer than the total timeout: the client must not wait.
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case n < 6:
			w.WriteHeader(http.StatusInternalServerError)
			return
		case n == 6:
			soakReset(w)
			return
		case n == 7:
			w.Header().Set("Content-Length", "1024")
			_, _ = io.WriteString(w, soakPayload[:100])
			panic(http.ErrAbortHandler) // a body cut short
		}
	case modeDead:
		// A request that slipped in as the dependency died.
		soakReset(w)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, r.URL.Path+"\n"+soakPayload)
}

// soakReset drops the connection with a TCP RST before any response byte.
func soakReset(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// flapper changes the dependencies' modes: every period each one, with
// even odds, takes a new mode (healthy 40 %, slow, failing, dead 20 %
// each), from a seeded source so that a run can be repeated.
type flapper struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func startFlapper(deps []*flappingDep, every time.Duration, seed uint64) *flapper {
	f := &flapper{done: make(chan struct{})}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	weights := [...]int32{modeHealthy, modeHealthy, modeSlow, modeFailing, modeDead}
	f.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-f.done:
				return
			case <-tick.C:
			}
			for _, d := range deps {
				if rng.IntN(2) == 0 {
					d.setMode(weights[rng.IntN(len(weights))])
				}
			}
		}
	})
	return f
}

func (f *flapper) stop() {
	close(f.done)
	f.wg.Wait()
}
